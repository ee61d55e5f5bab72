"""``xray upload``: send what a spool holds, by hand, in the order it was recorded.

The same files a client sends by itself when it starts (see ``xray.sdk._spool``): useful
when the process that recorded them will not run again, or to empty a spool copied from
another machine. Each file is locked while it is sent, so a running client sharing the
spool never sends the same batch at the same time; the server upserts on the client's
ids, so a batch sent twice is stored once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from xray.cli._errors import EXIT_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, CLIError
from xray.sdk._sender import HTTPTransport
from xray.sdk._spool import Spool, default_spool_dir, fallback_spool_dir, open_spool
from xray.shared import SDKConfig

__all__ = ["cmd_upload", "spool_folders"]


def spool_folders(config: SDKConfig, explicit: str | None) -> list[Path]:
    """The folders to upload: ``--spool``, else what the SDK would use with this config."""
    if explicit:
        return [Path(explicit).expanduser()]
    if config.spool_dir is None:
        raise CLIError(
            "sdk.spool_dir is null (no spool configured); name one with --spool DIR",
            exit_code=EXIT_USAGE,
        )
    if config.spool_dir != "auto":
        return [Path(config.spool_dir).expanduser()]
    return [default_spool_dir(config.base_url), fallback_spool_dir(config.base_url)]


def cmd_upload(args: argparse.Namespace, config: SDKConfig, out: TextIO) -> int:
    """Send every batch in the spool to ``config.base_url``; stop at the first failure."""
    headers = {"Content-Type": "application/json", "User-Agent": "xray-cli"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
        headers["X-API-Key"] = config.api_key
    sent = items = 0
    left = 0
    problem: CLIError | None = None
    transport = HTTPTransport(config.base_url, 1)
    try:
        for folder in spool_folders(config, getattr(args, "spool", None)):
            if not folder.is_dir():
                continue
            try:
                spool: Spool = open_spool(folder, max_bytes=0, target=config.base_url)
            except OSError as exc:
                raise CLIError(
                    f"cannot use the spool {folder}: {exc}", exit_code=EXIT_ERROR
                ) from exc
            for name in spool.names():
                if problem is not None:
                    left += 1
                    continue
                entry = spool.claim(name)
                if entry is None:
                    continue  # gone, being sent by a running client, or not a spool file
                request_headers = dict(headers)
                if entry.header.get("encoding") == "gzip":
                    request_headers["Content-Encoding"] = "gzip"
                response = transport.send(entry.body, request_headers, config.request_timeout)
                if response.status is not None and 200 <= response.status < 300:
                    sent += 1
                    items += entry.items
                    entry.remove()
                    continue
                entry.release()
                left += 1
                what = response.message or f"HTTP {response.status}"
                code = EXIT_UNREACHABLE if response.status is None else EXIT_ERROR
                problem = CLIError(
                    f"{config.base_url} did not take {entry.path} ({what}); it stays in the spool",
                    exit_code=code,
                )
    finally:
        transport.close()
    if getattr(args, "json", False):
        out.write(json.dumps({"batches": sent, "items": items, "left": left}) + "\n")
    else:
        out.write(f"uploaded {sent} batch(es), {items} item(s) to {config.base_url}")
        out.write(f"; {left} left in the spool\n" if left else "\n")
    if problem is not None:
        raise problem
    return 0
