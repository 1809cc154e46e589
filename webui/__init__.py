"""The WebUI (started by app.py), one module per job:

- settings_form: one field per config key, read off the typed config model; widget values <-> config dict
- config_file: reading, checking (problems per field) and saving the config file (round-trip YAML)
- uploads: documents copied into the saved input folder under safe names
- prompt_sets: the prompt folders a run can use
- run_controller: one run at a time in a background thread, with progress and log lines
- checks: "Test server" and "Estimate", as `processing.py --check` does them
- results: reading a run's report, chunk records, pair fates and training rows back from OUTPUT
- rendering: HTML for all of it, with model text escaped
- downloads: output files linked into a folder the web server may serve
- page: the gradio page that lays these out and wires them together
"""
