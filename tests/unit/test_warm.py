"""The waiting process a simulation starts its processor in (redblue.app.warm): a real child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from redblue.app import warm


def test_it_runs_the_command_it_is_given_with_its_environment_into_its_log(tmp_path: Path) -> None:
    process = warm.start()
    log = tmp_path / "command.log"
    stack = tmp_path / "no-stack"
    env = {"REDBLUE_STACK_DIR": str(stack), "REDBLUE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    warm.order(process, ["stack", "status"], log, env)
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    kafka = next(line for line in log.read_text().splitlines() if line.startswith("kafka"))
    assert "127.0.0.1:1 " in kafka and str(stack) in kafka  # the ordered environment, not the parent's


def test_it_works_in_its_parents_directory_so_relative_paths_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``simulate --out out/x --arena my.yaml`` run outside the checkout: the processor's log,
    arena and pins are the parent's relative paths (it once ran in the checkout and missed them)."""
    monkeypatch.chdir(tmp_path)
    process = warm.start()
    warm.order(process, ["stack", "status"], Path("relative.log"), {"REDBLUE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert "127.0.0.1:1" in (tmp_path / "relative.log").read_text()


def test_a_failing_command_gives_its_exit_code_and_its_message_in_the_log(tmp_path: Path) -> None:
    process = warm.start()
    log = tmp_path / "command.log"
    warm.order(process, ["simulate", "--days", "many"], log, {})
    assert process.wait(timeout=60) == 2
    assert "invalid" in log.read_text() and "many" in log.read_text()


def test_without_a_command_it_ends_quietly(tmp_path: Path) -> None:
    process = warm.start()
    assert process.stdin is not None
    process.stdin.close()  # the simulation ended (or failed) before it had a command to give
    assert process.wait(timeout=60) == 0


def test_claim_hands_out_the_prestarted_process_once(tmp_path: Path) -> None:
    warm.prestart()
    first, second = warm.claim(), warm.claim()
    try:
        assert first is not second
    finally:
        for process in (first, second):
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=60)


def test_an_order_to_a_process_that_has_exited_is_left_to_its_owner(tmp_path: Path) -> None:
    process = warm.start()
    process.kill()  # e.g. an import failed: nobody reads its stdin any more
    process.wait(timeout=60)
    warm.order(process, ["stack", "status"], tmp_path / "never.log", {})  # no BrokenPipeError: the exit code tells
    assert not (tmp_path / "never.log").exists()
