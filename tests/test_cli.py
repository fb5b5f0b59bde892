"""The `multiflow` dispatcher: every subcommand answers --help; unknown commands fail clearly."""

import pytest

from multiflow.cli import SUBCOMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


def test_unknown_command_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name, capsys):
    try:  # argparse-based commands exit from --help; dispatchers may return the code instead
        code = main([name, "--help"])
    except SystemExit as stop:
        code = stop.code
    assert code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


def test_allocator_tuning_applies_on_glibc_and_respects_the_opt_out(monkeypatch):
    import platform

    from multiflow.runtime import tune_allocator

    monkeypatch.setenv("MULTIFLOW_KEEP_MALLOC", "1")
    assert tune_allocator() is False
    monkeypatch.delenv("MULTIFLOW_KEEP_MALLOC")
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        pytest.skip(f"allocator tuning is glibc-only; this C library is {libc or 'unknown'}")
    assert tune_allocator() is True
