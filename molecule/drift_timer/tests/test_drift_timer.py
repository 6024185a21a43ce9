"""drift_timer: the command, its settings, a valid service and an enabled, active timer."""


def test_command_installed(host):
    cmd = host.file("/usr/local/bin/ragops-drift-check")
    assert cmd.mode == 0o755 and "0  clean" in cmd.content_string
    out = host.run("/usr/local/bin/ragops-drift-check --help")
    assert out.rc == 0 and "--report-dir" in out.stdout


def test_settings(host):
    env = host.file("/etc/ragops/drift-check.env").content_string
    assert "RAGOPS_INVENTORY=/srv/ragops/inventories/a100\n" in env
    assert "RAGOPS_RETENTION_DAYS=14\n" in env and "RAGOPS_DRIFT_REPORT_DIR=/var/lib/ragops/drift\n" in env
    assert host.file("/var/lib/ragops/drift").is_directory


def test_units_valid_and_timer_active(host):
    timer = host.file("/etc/systemd/system/ragops-drift-check.timer").content_string
    assert "OnCalendar=*-*-* 06:00:00" in timer and "Persistent=true" in timer
    svc = host.file("/etc/systemd/system/ragops-drift-check.service").content_string
    assert "EnvironmentFile=/etc/ragops/drift-check.env" in svc and "Type=oneshot" in svc
    # a hung check cannot block the timer: systemd kills it after its start timeout (30 min by default)
    assert host.check_output("systemctl show -p TimeoutStartUSec ragops-drift-check.service") == "TimeoutStartUSec=30min"
    verify = host.run("systemd-analyze verify /etc/systemd/system/ragops-drift-check.timer")
    assert "ragops-drift-check" not in verify.stderr or verify.rc == 0, verify.stderr
    t = host.service("ragops-drift-check.timer")
    assert t.is_enabled and t.is_running
    assert "ragops-drift-check.timer" in host.check_output("systemctl list-timers --all")
