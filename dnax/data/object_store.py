"""Reading MDS datasets from an object store (`s3://bucket/prefix`): one-line errors and checked shard downloads.

The store is the one mosaicml-streaming talks to: boto3's default credential chain (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, ...), `AWS_DEFAULT_REGION`, and `S3_ENDPOINT_URL` for a store other than AWS
(MinIO, Ceph radosgw, s3rver). This module adds what streaming 0.13 lacks:

- `fetch_object`: a small object (an `index.json`, the conversion manifest) or a one-line error that says what is
  wrong: the endpoint cannot be reached, the credentials are refused, the bucket or the object does not exist.
- `prepare_checked`: a shard download checked against its index (size, and the shard hash when the conversion wrote
  one: `SHARD_HASH`), downloaded once more when it arrives corrupt; a shard that cannot be prepared is evicted
  (its state back to REMOTE, its files deleted: streaming would leave it PREPARING, and every later read of it
  would wait forever) and a `ShardDownloadError` names its URL and the cause.
"""
from __future__ import annotations

import os
import urllib.parse
from typing import Any, Callable

#: hash written into every shard's index entry by `data_tools.fasta_to_mds` and checked after each download (fast:
#: xxh3 hashes several GB/s, the download is the bottleneck)
SHARD_HASH = "xxh3_64"


class ObjectStoreError(OSError):
    """The object store cannot be used as configured (unreachable, credentials refused, no such bucket)."""


class ShardDownloadError(RuntimeError):
    """A shard could not be downloaded, or arrived corrupt twice; the message names its URL."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def s3_endpoint() -> str:
    return os.environ.get("S3_ENDPOINT_URL") or "AWS S3 (S3_ENDPOINT_URL is not set)"


def describe_s3_error(url: str, exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, whether it means "no such object") for a failed S3 request on `url`."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    bucket = urllib.parse.urlparse(url).netloc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            return f"{url} does not exist", True
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist at {s3_endpoint()} (reading {url})", False
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                    "ExpiredToken"):
            return (f"{s3_endpoint()} refused access to {url} ({code}): check AWS_ACCESS_KEY_ID / "
                    f"AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"), False
        return f"{s3_endpoint()} answered {code or 'an error'} for {url}: {one_line(exc)}", False
    if isinstance(exc, NoCredentialsError):
        return f"no credentials to read {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)", False
    if isinstance(exc, EndpointConnectionError) or isinstance(exc, ConnectionError):
        return (f"cannot reach the object store at {s3_endpoint()} to read {url} ({one_line(exc)}): is it up, and "
                f"is S3_ENDPOINT_URL right?"), False
    return f"reading {url} failed: {one_line(exc)}", False


def s3_client(timeout: float = 60.0):
    """A boto3 S3 client configured like streaming's downloader (`S3_ENDPOINT_URL`), with standard retries."""
    from boto3.session import Session
    from botocore.config import Config

    config = Config(connect_timeout=10, read_timeout=timeout, retries={"mode": "standard", "max_attempts": 3})
    return Session().client("s3", config=config, endpoint_url=os.environ.get("S3_ENDPOINT_URL"))


def fetch_object(url: str, dest: str, timeout: float = 60.0) -> bool:
    """Download the object `url` to the file `dest` with streaming's downloader (written whole or not at all).

    Returns False if the object does not exist (its bucket does); raises `ObjectStoreError`, one line naming `url`,
    for anything else (for `s3://`: the endpoint unreachable, credentials refused, no such bucket)."""
    from streaming.base.storage import CloudDownloader

    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        CloudDownloader.direct_download(url, tmp, timeout)
    except FileNotFoundError:
        return False
    except Exception as e:  # noqa: BLE001 - backends raise anything; classified for S3
        if urllib.parse.urlparse(url).scheme != "s3":
            raise ObjectStoreError(f"reading {url} failed: {one_line(e)}") from None
        reason, missing = describe_s3_error(url, e)
        if missing:  # a HEAD request's 404 is the same for a missing bucket and a missing object
            bucket_problem = _bucket_problem(url)
            if bucket_problem is None:
                return False
            reason = bucket_problem
        raise ObjectStoreError(reason) from None
    os.replace(tmp, dest)
    return True


def _bucket_problem(url: str) -> str | None:
    """None if the bucket of `url` exists (and the credentials are accepted), else why not (one line)."""
    from botocore.exceptions import ClientError

    bucket = urllib.parse.urlparse(url).netloc
    try:
        s3_client(10).head_bucket(Bucket=bucket)
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket", "NotFound"):
            return f"bucket {bucket!r} does not exist at {s3_endpoint()} (reading {url})"
        return describe_s3_error(url, e)[0]
    except Exception as e:  # noqa: BLE001 - classified
        return describe_s3_error(url, e)[0]
    return None


def list_prefixes(url: str) -> list[str]:
    """Names of the "directories" directly under an `s3://` URL that hold an `index.json` (best effort: [] on any
    error or another scheme); used to say which splits exist when the one asked for does not."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "s3":
        return []
    prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
    try:
        client = s3_client(10)
        listing = client.list_objects_v2(Bucket=parsed.netloc, Prefix=prefix, Delimiter="/")
        names = [p["Prefix"][len(prefix):].rstrip("/") for p in listing.get("CommonPrefixes", [])]
        return [n for n in names
                if client.list_objects_v2(Bucket=parsed.netloc, Prefix=f"{prefix}{n}/index.json").get("KeyCount")]
    except Exception:  # noqa: BLE001 - a hint only
        return []


def index_hash(index: dict) -> str | None:
    """`SHARD_HASH` if every shard file of a streaming `index.json` carries it (written by the converter), else None."""
    for shard in index["shards"]:
        for key in ("raw_data", "zip_data"):
            info = shard.get(key)
            if info and SHARD_HASH not in (info.get("hashes") or {}):
                return None
    return SHARD_HASH


# ---------------------------------------------------------------------------------------------- shard downloads
def shard_url(stream, shard) -> str:
    """The object-store URL of a shard's first file, as streaming's `Stream._download_file` builds it."""
    raw, zipped = shard.file_pairs[0]
    return os.path.join(stream.remote, stream.split or "", (zipped or raw).basename)


def local_size_problem(stream, shard) -> str | None:
    """Why a shard's prepared (raw) files in the cache do not match its index (size), or None."""
    for raw, _ in shard.file_pairs:
        path = os.path.join(stream.local, stream.split or "", raw.basename)
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"{path} is missing after the download"
        if size != raw.bytes:
            return f"it has {size} bytes, its index.json says {raw.bytes}"
    return None


def _is_download_failure(exc: BaseException) -> bool:
    """Whether `exc` comes from talking to the store (already retried by streaming), not from checking the data."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError, ConnectionError, TimeoutError))


def evict(dataset, shard_id: int) -> None:
    """Mark a shard REMOTE again and delete its cached files (under streaming's cache lock)."""
    from filelock import FileLock
    from streaming.base.dataset import _ShardState

    lock = dataset.__dict__.get("_cache_filelock")
    if lock is None:
        lock = dataset._cache_filelock = FileLock(dataset._cache_filelock_path)
    with lock:
        was_local = dataset._shard_states[shard_id] == _ShardState.LOCAL
        dataset._shard_states[shard_id] = _ShardState.REMOTE
        freed = dataset.shards[shard_id].evict()
        if was_local:
            dataset.cache_usage = max(0, dataset.cache_usage - freed)


def prepare_checked(dataset, shard_id: int, blocking: bool, prepare: Callable[[int, bool], Any],
                    on_failure: Callable[[str], None] = lambda message: None) -> None:
    """`prepare(shard_id, blocking)` (streaming's `StreamingDataset.prepare_shard`) for a shard that is downloaded,
    checked: a shard this call brought from REMOTE to LOCAL must have its index's sizes; a corrupt download (hash
    mismatch with `validate_hash`, not decompressable, wrong size) is evicted and downloaded once more.

    On failure (the store failed through streaming's `download_retry` attempts, or the shard arrived corrupt twice)
    `on_failure(message)` is called first (so that other threads stop before the shard is REMOTE again), then the
    shard is evicted and `ShardDownloadError(message)` raised: one line with the shard's URL and the cause."""
    from streaming.base.dataset import _ShardState

    stream = dataset.streams[dataset.stream_per_shard[shard_id]]
    shard = dataset.shards[shard_id]
    url = shard_url(stream, shard)
    reason = ""
    for fetch in (1, 2):
        before = dataset._shard_states[shard_id]
        try:
            prepare(shard_id, blocking)
        except Exception as e:  # noqa: BLE001 - classified below
            if _is_download_failure(e):
                cause = describe_s3_error(url, e)[0] if url.startswith("s3://") else one_line(e)
                message = (f"cannot download shard {url} after {stream.download_retry} attempts "
                           f"(download_retry): {cause}")
                break
            reason = (f"its {stream.validate_hash} hash differs from index.json"
                      if str(e).startswith("Checksum failure") else one_line(e))
        else:
            if before != _ShardState.REMOTE or dataset._shard_states[shard_id] != _ShardState.LOCAL:
                return  # not downloaded by this call (already there, or another worker is preparing it)
            reason = local_size_problem(stream, shard)
            if reason is None:
                return
        if fetch == 1:
            evict(dataset, shard_id)
    else:
        message = (f"shard {url} is corrupt, downloaded twice: {reason}; the object differs from its index.json "
                   f"(re-upload the dataset) or the store is faulty")
    on_failure(message)
    evict(dataset, shard_id)
    raise ShardDownloadError(message)
