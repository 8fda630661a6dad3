"""What the builtin validators read: a binary file is told by its first bytes."""

from __future__ import annotations

from pathlib import Path

import attrs

from lockgate.builtin_plugins.validators import secrets
from lockgate.plugin import ValidationSubject


def subject(root: Path | None, files: dict[str, bytes], reader: object = None) -> ValidationSubject:
    return ValidationSubject(
        component="alice:c",
        workspace="alice",
        component_id="c",
        component_type="builders",
        stage="staging",
        root=root,
        files=tuple(sorted(files)),
        sizes={name: len(data) for name, data in files.items()},
        reader=reader,  # type: ignore[arg-type]
    )


def test_read_bytes_reads_a_prefix_from_disk_or_from_the_store(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"0123456789")
    on_disk = subject(tmp_path, {"a.bin": b"0123456789"})
    assert on_disk.read_bytes("a.bin", 4) == b"0123"
    assert on_disk.read_bytes("a.bin") == b"0123456789"
    in_store = subject(None, {"a.bin": b"0123456789"}, reader=lambda path: b"0123456789")
    assert in_store.read_bytes("a.bin", 4) == b"0123"


def test_secrets_reads_only_the_head_of_a_binary_file(tmp_path: Path) -> None:
    binary = b"\0" + b"AKIAIOSFODNN7EXAMPLE " * 50_000  # 1 MiB, a key after the NUL
    text = b"key = AKIAIOSFODNN7EXAMPLE\n"
    for name, data in (("blob.bin", binary), ("conf.txt", text)):
        (tmp_path / name).write_bytes(data)
    reads: list[tuple[str, int | None]] = []

    class Counting(ValidationSubject):
        def read_bytes(self, path: str, limit: int | None = None) -> bytes:
            reads.append((path, limit))
            return super().read_bytes(path, limit)

    base = subject(tmp_path, {"blob.bin": binary, "conf.txt": text})
    counted = Counting(**attrs.asdict(base, recurse=False))
    issues = secrets.on_validate(counted, secrets.SecretsSettings())
    assert [(i.path, i.code) for i in issues] == [("conf.txt", "secrets-found")]
    assert reads == [("blob.bin", 8192), ("conf.txt", None)]
