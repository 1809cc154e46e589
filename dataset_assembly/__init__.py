"""Training-data assembly: pipeline OUTPUT folders in, one folder axolotl trains on out.

assemble_training_data.py is the command line; the modules, in the order the data
flows through them:

    output_folders   read one OUTPUT folder (datasets, run report, stored prompts)
    assembly         combine, deduplicate, hold out, shuffle (rows only, nothing written)
    holdout          which pairs and conversations go to the evaluation split
    writing          write the folder atomically: files, prompts_used/, manifest.json
    card             the dataset card (README.md) from the manifest
    chat_template    the Llama 3 rendering and the shape of a trainable conversation
    token_counting   token counts for the card (a real tokenizer, tiktoken, or an estimate)

Question similarity comes from generation_functions.near_duplicates, which the
pipeline's chunk filter uses too. Nothing here reads the pipeline's config or
talks to a model server.
"""
