"""Signed approvals: ``lockgate approve --sign`` with real SSH keys (``ssh-keygen -Y``),
verified against the project's ``allowed_signers`` when recorded and again at promotion;
each forgery refused with a clear line; a stage requiring signatures refuses an
unsigned approval."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ProjectWorkspace
from lockgate.contracts.signing import approval_message, sign_approval
from lockgate.contracts.state import AuditEvent, EventFilter
from lockgate.errors import RefusedError
from lockgate.operations.approve import decide
from lockgate.testing import CliResult, run_cli

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")

CONFIG = """\
plugins:
  approvals:
    stages:
      production:
        required: 1
        signed: true
"""
ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
REF = "alice:etl"


def keypair(directory: Path, name: str) -> Path:
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key


class Signed:
    def __init__(self, tmp_path: Path) -> None:
        self.ws = ProjectWorkspace(tmp_path / "p", CONFIG)
        self.root = self.ws.root
        keys = tmp_path / "keys"
        keys.mkdir()
        self.carol, self.dave = keypair(keys, "carol"), keypair(keys, "dave")
        public = " ".join(self.carol.with_suffix(".pub").read_text().split()[:2])
        (self.root / "allowed_signers").write_text(f"carol {public}\n")
        self.revision = self.ws.stage_files(REF, {"run.py": "print('hi')\n"})
        for _ in range(2):
            assert self.cli("promote", REF).exit_code == 0

    def cli(self, *args: str, actor: str = "alice") -> CliResult:
        return run_cli(*args, project=self.root, env={**ENV, "LOCKGATE_ACTOR": actor})

    def unsigned(self) -> list[str]:
        """The approvals-unsigned warnings a gate into production gives now."""
        done = self.cli("validate", REF, "--stage", "production", "--json")
        report = json.loads(done.stdout)
        issues = report["component_results"][REF]["issues"]
        return [i["message"] for i in issues if i["code"] == "approval-unsigned"]

    def events(self, action: str) -> list[AuditEvent]:
        project = self.ws.project()
        try:
            return project.state().events(EventFilter(action=action))
        finally:
            project.close()


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    return Signed(tmp_path)


def test_an_unsigned_approval_does_not_count_where_signatures_are_required(
    signed: Signed,
) -> None:
    assert signed.cli("approve", REF, actor="carol").exit_code == 0
    refused = signed.cli("promote", REF)
    assert refused.exit_code == 1
    assert "needs 1 approval" in refused.stderr
    assert signed.unsigned() == [
        "the approval of carol does not count in production: it is not signed"
    ]


def test_a_signed_approval_verifies_is_audited_and_lets_the_promotion_through(
    signed: Signed,
) -> None:
    done = signed.cli("approve", REF, "--sign", "--key", str(signed.carol), "--json", actor="carol")
    assert done.exit_code == 0, done.stderr
    [event] = signed.events("approve")
    assert event.details["signed_stage"] == "production"
    assert str(event.details["key"]).startswith("SHA256:")
    promoted = signed.cli("promote", REF, "--json")
    assert promoted.exit_code == 0, promoted.stderr
    assert json.loads(promoted.stdout)["stage"] == "production"


def test_the_signature_is_verified_again_at_promotion(signed: Signed) -> None:
    done = signed.cli("approve", REF, "--sign", "--key", str(signed.carol), actor="carol")
    assert done.exit_code == 0
    (signed.root / "allowed_signers").write_text("")  # carol's key is withdrawn
    refused = signed.cli("promote", REF)
    assert refused.exit_code == 1
    [why] = signed.unsigned()
    assert "the approval of carol does not count in production" in why
    assert "the signature is not carol's" in why


def test_a_signature_for_another_stage_does_not_count_here(signed: Signed) -> None:
    args = ("approve", REF, "--sign", "--key", str(signed.carol), "--stage", "integration")
    assert signed.cli(*args, actor="carol").exit_code == 0
    refused = signed.cli("promote", REF)
    assert refused.exit_code == 1
    [why] = signed.unsigned()
    assert "made over another revision, stage or decision" in why


def test_a_key_allowed_signers_does_not_list_is_refused_and_records_nothing(
    signed: Signed,
) -> None:
    for actor in ("carol", "dave"):  # dave's key as carol; dave's own, unlisted
        refused = signed.cli("approve", REF, "--sign", "--key", str(signed.dave), actor=actor)
        assert refused.exit_code == 1
        line = refused.stderr.strip()
        assert line.count("\n") == 0 and f"the signature is not {actor}'s" in line
    assert signed.events("approve") == []


def test_a_signature_over_another_revision_is_refused(signed: Signed) -> None:
    other = approval_message(REF, "f" * 64, "production", "approve")
    forged = sign_approval(signed.carol, other)
    project = signed.ws.project("carol")
    try:
        with pytest.raises(RefusedError, match="the signature is not carol's"):
            decide(project, REF, "approve", signature=forged)
        with pytest.raises(RefusedError, match="the signature is not carol's"):
            reject = approval_message(REF, signed.revision, "production", "reject")
            decide(project, REF, "approve", signature=sign_approval(signed.carol, reject))
    finally:
        project.close()
    assert signed.events("approve") == []


def test_a_missing_key_file_is_one_line(signed: Signed, tmp_path: Path) -> None:
    result = signed.cli("approve", REF, "--sign", "--key", str(tmp_path / "nope"), actor="carol")
    assert result.exit_code == 2
    assert "no such key file" in result.stderr


def test_the_server_accepts_a_signature_made_elsewhere(signed: Signed) -> None:
    from test_server import Api, start, stop

    made = signed.cli("token", "create", "--actor", "carol", "--role", "approver", "--json")
    token = json.loads(made.stdout)["token"]
    proc, port = start(signed.root)
    try:
        api = Api(signed.root, port, {"approver": token})
        path = f"/api/v1/components/{REF}/approve"
        other = sign_approval(
            signed.carol, approval_message(REF, "e" * 64, "production", "approve")
        )
        status, body = api.call("POST", path, role="approver", body={"signature": other})
        assert status == 409 and "the signature is not carol's" in body["error"]["message"]
        good = approval_message(REF, signed.revision, "production", "approve")
        body_in = {"signature": sign_approval(signed.carol, good), "stage": "production"}
        status, body = api.call("POST", path, role="approver", body=body_in)
        assert status == 200 and body["actor"] == "carol", body
    finally:
        stop(proc)
    [event] = signed.events("approve")
    assert event.details["actor_via"] == f"token:{token[3:15]}"
    assert str(event.details["key"]).startswith("SHA256:")
    assert signed.cli("promote", REF).exit_code == 0
