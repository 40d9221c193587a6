"""Download one file from a list of URLs (primary, mirrors, backups) into the
download dir, so that whatever lands there under its real name has passed
the caller's verification.

The body goes to `<dir>/.<name>.part`; an interrupted transfer is resumed
with an HTTP Range request on the next attempt; the caller's `verify` runs on
the complete .part, and only then is it renamed to its real name.  When the
function gives up, it removes the .part: a failed download leaves nothing
behind.  (A KeyboardInterrupt keeps the .part, so the next run resumes it;
a resumed .part that then fails verification is fetched again from zero.)
"""
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse

import requests
import urllib3

from common.errors import InfraError, UserError, VerificationError

USER_AGENT = "ltsp-mosix-fetch/0.1"
_CHUNK = 64 * 1024


class DownloadError(InfraError):
    """No URL could give the file.  `failures` lists (url, reason, missing)
    per URL; `missing` means the URL answered that the file does not exist
    (HTTP 404/410, no such local file), as opposed to being unreachable."""

    def __init__(self, message: str, failures: list[tuple[str, str, bool]]):
        super().__init__(message)
        self.failures = failures

    @property
    def all_missing(self) -> bool:
        return bool(self.failures) and all(missing for _, _, missing in self.failures)


class _UrlFailed(Exception):
    """This URL cannot give the file; go on with the next one."""

    def __init__(self, reason: str, *, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


class _Retryable(_UrlFailed):
    """A transient failure (connection, timeout, 5xx): retry the same URL."""


def part_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.part"


def download(urls: Iterable[str], dest: Path, *, timeout: float = 30, retries: int = 3,
             backoff: float = 0.5, progress: bool = True,
             verify: Callable[[Path], object] | None = None, offline: bool = False) -> Path:
    """Fetch `dest` from the first URL that gives a verified file; see
    download_from()."""
    return download_from(urls, dest, timeout=timeout, retries=retries, backoff=backoff,
                         progress=progress, verify=verify, offline=offline)[0]


def download_from(urls: Iterable[str], dest: Path, *, timeout: float = 30, retries: int = 3,
                  backoff: float = 0.5, progress: bool = True,
                  verify: Callable[[Path], object] | None = None,
                  offline: bool = False) -> tuple[Path, str]:
    """Like download(), and also say which URL the file came from.

    URLs are tried in order: a 404 moves on at once, connection errors,
    timeouts and 5xx are retried `retries` times with exponential back-off
    (`backoff`, 2*backoff, ...).  `verify(part_path)` must raise on a bad
    file.  offline=True never touches the network: it returns the cached
    dest (unverified: the caller verifies it) or raises InfraError."""
    dest = Path(dest)
    urls = list(urls)
    if offline:
        return _cached_for_offline(dest), f"the download dir {dest.parent} (offline mode)"
    if not urls:
        raise UserError(f"no URL is configured to download {dest.name} from")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    failures: list[tuple[str, str, bool]] = []
    bad_files = 0
    try:
        for url in urls:
            try:
                _fetch_and_verify(url, part, dest.name, verify, timeout=timeout,
                                  retries=retries, backoff=backoff, progress=progress)
            except _UrlFailed as failure:
                failures.append((url, failure.reason, failure.missing))
                continue
            except VerificationError as bad:
                bad_files += 1
                failures.append((url, str(bad), False))
                continue
            _fsync(part)
            os.replace(part, dest)
            return dest, url
    except Exception:
        part.unlink(missing_ok=True)
        raise
    part.unlink(missing_ok=True)
    raise _all_failed(dest, failures, bad_files)


def _all_failed(dest: Path, failures: list[tuple[str, str, bool]], bad_files: int) -> Exception:
    tried = "\n".join(f"  {url}: {reason}" for url, reason, _ in failures)
    if bad_files:
        return VerificationError(f"{dest.name}: no URL gave a file that passes verification; "
                                 f"nothing was saved in {dest.parent}. Tried:\n{tried}")
    return DownloadError(f"could not download {dest.name} into {dest.parent}; tried:\n{tried}",
                         failures)


def _cached_for_offline(dest: Path) -> Path:
    if dest.is_file():
        return dest
    raise InfraError(f"{dest.name} is not in the download dir {dest.parent} and offline mode "
                     f"is on: download it once without offline mode, or copy it there")


def _fetch_and_verify(url: str, part: Path, name: str, verify, **options) -> None:
    """Leave a complete, verified body in `part`, or raise."""
    resumed = part.exists() and part.stat().st_size > 0
    _fetch(url, part, name, **options)
    try:
        _verify_part(part, verify)
    except VerificationError:
        if not resumed:
            raise
        # The bytes kept from an earlier attempt may come from another
        # mirror or an older upstream file: fetch the whole file once more.
        _fetch(url, part, name, **options)
        _verify_part(part, verify)


def _verify_part(part: Path, verify) -> None:
    if verify is None:
        return
    try:
        verify(part)
    except Exception:
        part.unlink(missing_ok=True)
        raise


def _fetch(url: str, part: Path, name: str, **options) -> None:
    scheme = urlparse(url).scheme
    if scheme == "file":
        _copy_local(url, part)
    elif scheme in ("http", "https"):
        _fetch_http(url, part, name, **options)
    else:
        raise _UrlFailed(f"unsupported URL scheme {scheme!r} (use http, https or file)")


# ---- file:// -----------------------------------------------------------------

def _copy_local(url: str, part: Path) -> None:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise _UrlFailed(f"file URL names a remote host {parsed.netloc!r}")
    try:
        shutil.copyfile(unquote(parsed.path), part)
    except OSError as error:
        part.unlink(missing_ok=True)
        raise _UrlFailed(f"cannot copy: {error.strerror or error}",
                         missing=isinstance(error, FileNotFoundError)) from None


# ---- http(s):// --------------------------------------------------------------

def _fetch_http(url: str, part: Path, name: str, *, timeout: float, retries: int,
                backoff: float, progress: bool) -> None:
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        last_reason = "no attempt made"
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                _http_attempt(session, url, part, name, timeout=timeout, progress=progress)
                return
            except _Retryable as failure:
                last_reason = failure.reason
        raise _UrlFailed(f"{last_reason} (gave up after {retries + 1} attempts)")


def _http_attempt(session: requests.Session, url: str, part: Path, name: str, *,
                  timeout: float, progress: bool) -> None:
    """One GET; resumes `part` when it holds bytes from an earlier attempt."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: the bytes on disk must be the bytes published, never a
    # transfer-decoded variant, or sizes and Range offsets stop matching.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            start, total = _body_range(response, offset, part)
            _write_body(response, part, start, total, name, progress)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError, ConnectionError) as error:
        raise _Retryable(_describe_network_error(error)) from None


def _body_range(response: requests.Response, offset: int, part: Path) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's full size, or raise
    for answers that carry no usable body."""
    status = response.status_code
    if status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range", ""))
        if start != offset:
            part.unlink(missing_ok=True)
            raise _Retryable(f"server answered Range bytes={offset}- from byte {start}; "
                             f"restarting from 0")
        return start, total
    if status == 200:
        # No Range sent, or the server ignored it: the body is the whole file.
        length = response.headers.get("Content-Length")
        return 0, int(length) if length and length.isdigit() else None
    if status == 416:
        return _range_not_satisfiable(response, offset, part)
    reason = f"HTTP {status} {response.reason or ''}".strip()
    if status >= 500:
        raise _Retryable(reason)
    raise _UrlFailed(reason, missing=status in (404, 410))


def _range_not_satisfiable(response, offset: int, part: Path) -> tuple[int, int | None]:
    """416: our .part is as long as (complete) or longer than (stale) the file."""
    _, total = _parse_content_range(response.headers.get("Content-Range", ""))
    if total == offset:
        return offset, total
    part.unlink(missing_ok=True)
    raise _Retryable(f"HTTP 416: the partial download ({offset} bytes) does not fit the "
                     f"file ({total if total is not None else 'unknown'} bytes); restarting from 0")


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _write_body(response, part: Path, start: int, total: int | None, name: str,
                progress: bool) -> None:
    meter = ProgressLine(name, total, start, enabled=progress)
    written = start
    with open(part, "r+b" if start else "wb") as out:
        out.seek(start)
        out.truncate()
        for block in response.raw.stream(_CHUNK, decode_content=False):
            _write_block(out, block, part)
            written += len(block)
            meter.update(written)
    meter.finish(written)
    if total is not None and written < total:
        raise _Retryable(f"connection closed after {written} of {total} bytes")


def _write_block(out, block: bytes, part: Path) -> None:
    try:
        out.write(block)
    except OSError as error:  # disk full, read-only dir: the machine, not the URL
        raise InfraError(f"cannot write the download {part}: {error.strerror or error}") from None


def _describe_network_error(error: Exception) -> str:
    """requests' messages nest urllib3's; keep the part a person needs."""
    text = str(error)
    errno_part = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno_part:
        return errno_part.group(0).strip()
    if isinstance(error, requests.Timeout) or "timed out" in text:
        return "timed out"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken mid-file"
    return f"{type(error).__name__}: {text[:200]}"


def _fsync(path: Path) -> None:
    """The renamed file must be complete on disk even after a power cut."""
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


# ---- progress ----------------------------------------------------------------

class ProgressLine:
    """`name: 12.0 MiB / 40.1 MiB (29%) 3.1 MiB/s` on stderr, redrawn at most
    4 times a second on a terminal (every 5 s in a log), so a fast download
    does not spend its time printing."""

    def __init__(self, name: str, total: int | None, start: int = 0, *, enabled: bool = True):
        self.name, self.total, self.start = name, total, start
        self.enabled = enabled
        self.is_tty = enabled and sys.stderr.isatty()
        self.interval = 0.25 if self.is_tty else 5.0
        self.began = self.last = time.monotonic()
        self.shown = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            self._show(done, now)

    def finish(self, done: int) -> None:
        if self.enabled and (self.shown or done > self.start):
            self._show(done, time.monotonic())
            if self.is_tty:
                sys.stderr.write("\n")
                sys.stderr.flush()

    def _show(self, done: int, now: float) -> None:
        rate = (done - self.start) / max(now - self.began, 1e-6)
        text = f"{self.name}: {_size(done)}"
        if self.total:
            text += f" / {_size(self.total)} ({100 * done // self.total}%)"
        text += f" {_size(rate)}/s"
        sys.stderr.write(f"\r{text}\033[K" if self.is_tty else text + "\n")
        sys.stderr.flush()
        self.shown = True


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GiB"
