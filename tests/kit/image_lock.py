"""Image-lock entries for the lock and DAG tests: releases with made-up digests."""

from __future__ import annotations

from datakit_orchestration.lock import ImageLock, Release

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def release(digest: str = DIGEST_A) -> Release:
    return Release(
        digest=digest,
        revision="c9cc8593606d67c484f9cb17ac8e2ef534281993",
        created="2026-11-23T06:41:26Z",
        released_at="2026-11-23T07:00:00Z",
        registry="127.0.0.1:5000",
    )


def lock_with(*entries: tuple[str, str, str]) -> ImageLock:
    """A lock holding one release per (runner, version, digest)."""
    lock = ImageLock()
    for runner, version, digest in entries:
        lock = lock.with_release(runner, version, release(digest))
    return lock
