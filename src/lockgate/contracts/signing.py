"""Signed approvals: an approver's SSH signature over what they approved.

An approval can carry a signature made with ``ssh-keygen -Y sign`` (namespace
``lockgate-approval``, as git signs commits with SSH keys) over :func:`approval_message`:
the component, the revision's digest, the stage it is meant for and the decision. It is
verified against the project's ``allowed_signers`` file (OpenSSH's format: one line per
principal and key) with the approver's name as the principal, when the approval is
recorded and again when a gate counts it; a signature over another revision, stage or
decision, or by a key that file does not list for the approver, does not verify.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lockgate.errors import InputError, MissingCapabilityError, RefusedError

__all__ = ["NAMESPACE", "approval_message", "sign_approval", "verify_approval"]

NAMESPACE = "lockgate-approval"


def approval_message(component: str, revision: str, stage: str, decision: str) -> bytes:
    """The bytes an approver signs: one ``key value`` line each, in a fixed order."""
    lines = [
        "lockgate approval v1",
        f"component {component}",
        f"revision {revision}",
        f"stage {stage}",
        f"decision {decision}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise MissingCapabilityError(
            "signed approvals need ssh-keygen (OpenSSH 8.2 or later); install openssh-client"
        )
    return found


def sign_approval(key: Path, message: bytes) -> str:
    """The armored signature of ``message`` with the private key file ``key``."""
    if not key.is_file():
        raise InputError(f"--key {key}: no such key file; give the private key to sign with")
    done = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", NAMESPACE],
        input=message,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise RefusedError(f"ssh-keygen could not sign with {key}: {why[-1] if why else 'failed'}")
    return done.stdout.decode()


def verify_approval(allowed_signers: Path, principal: str, message: bytes, signature: str) -> str:
    """The key's fingerprint when ``signature`` is ``principal``'s over ``message`` by a
    key ``allowed_signers`` lists for them; else :class:`RefusedError` saying so."""
    if not allowed_signers.is_file():
        raise RefusedError(
            f"no allowed_signers file at {allowed_signers}: list each approver's public key "
            "there (OpenSSH format: 'carol ssh-ed25519 AAAA...') to accept signed approvals"
        )
    fd, sig_path = tempfile.mkstemp(suffix=".sig")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(signature)
        argv = ["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", NAMESPACE]
        done = subprocess.run(
            [_ssh_keygen(), *argv, "-s", sig_path],
            input=message,
            capture_output=True,
            check=False,
            timeout=60,
        )
    finally:
        Path(sig_path).unlink()
    said = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not said.startswith("Good"):
        raise RefusedError(
            f"the signature is not {principal}'s over this approval: it was made over another "
            f"revision, stage or decision, or with a key {allowed_signers.name} does not list "
            f"for {principal}"
        )
    return said.rsplit(" ", 1)[-1]  # "... with ED25519 key SHA256:..."
