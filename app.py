"""Verustoolkit's WebUI: the settings, a run and its results in a browser.

    python app.py                          # http://127.0.0.1:7860, settings from ./config.yaml
    python app.py --config FILE --port N   # another config file or port
    python app.py --host 0.0.0.0           # reachable from other machines: set a password
    VERUSTOOLKIT_WEBUI_AUTH=user:pass python app.py --host 0.0.0.0

The run happens in this process through the same run function as
processing.py. Settings are written to the config file only when you press
"Save settings". The page and what each widget does live in the webui/ package;
this file only reads the command line and starts the server.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Mapping, Optional

from generation_functions.log_setup import project_logging

APP_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = APP_DIR / "config.yaml"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
AUTH_ENV = "VERUSTOOLKIT_WEBUI_AUTH"
log = logging.getLogger("verustoolkit")


def parse_args(argv: Optional[list[str]], environ: Mapping[str, str] = os.environ) -> argparse.Namespace:
    """The command line; --host and --port fall back to gradio's own GRADIO_SERVER_NAME and
    GRADIO_SERVER_PORT, and --auth to VERUSTOOLKIT_WEBUI_AUTH."""
    parser = argparse.ArgumentParser(description="The Verustoolkit WebUI.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: config.yaml)")
    parser.add_argument(
        "--host", help=f"address to bind (default: $GRADIO_SERVER_NAME, else {DEFAULT_HOST}: this machine only)"
    )
    parser.add_argument("--port", type=int, help=f"port (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help=f"ask for this login (default: ${AUTH_ENV}; prefer the variable: a command line is visible to other users)",
    )
    args = parser.parse_args(argv)
    args.host = args.host or environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    if args.port is None:
        port = environ.get("GRADIO_SERVER_PORT", "").strip()
        if port and not port.isdigit():
            parser.error(f"GRADIO_SERVER_PORT={port!r} is not a port number")
        args.port = int(port) if port else DEFAULT_PORT
    auth = args.auth or environ.get(AUTH_ENV) or ""
    if auth and (":" not in auth or not auth.split(":", 1)[0] or not auth.split(":", 1)[1]):
        parser.error(f"--auth / {AUTH_ENV} must be USER:PASSWORD, both not empty")
    args.auth = tuple(auth.split(":", 1)) if auth else None
    return args


def is_local(host: str) -> bool:
    """Only this machine can reach an app bound to host."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, auth: Optional[tuple[str, str]]) -> str:
    if is_local(host) or auth:
        return ""
    return (
        f"the WebUI listens on {host} without a password: anyone who can reach this port can change the settings, "
        f"start runs (spending your API budget) and download the datasets. Set {AUTH_ENV}=user:password "
        "(or --auth), or bind to 127.0.0.1."
    )


def theme() -> object:
    """Gradio's default theme with help text that reads easily (not pale grey)."""
    import gradio as gr

    return gr.themes.Default().set(
        block_info_text_color="*neutral_700",
        block_info_text_color_dark="*neutral_300",
        block_info_text_size="*text_sm",
    )


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # so that `finally` removes the download folders


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported; there may be no network
    from gradio.utils import get_upload_folder

    from webui.downloads import DownloadStage
    from webui.page import build_app

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    with project_logging(handler, logging.INFO):
        warning = exposure_warning(args.host, args.auth)
        if warning:
            log.warning("%s", warning)
        downloads = DownloadStage(Path(get_upload_folder()))
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            app, css = build_app(args.config, APP_DIR, downloads)
            app.queue(default_concurrency_limit=8)
            app.launch(
                server_name=args.host,
                server_port=args.port,
                auth=args.auth,
                css=css,
                theme=theme(),
                ssr_mode=False,
                show_error=True,
                quiet=False,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
            downloads.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
