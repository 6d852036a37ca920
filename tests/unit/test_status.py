import datetime

from labhub import status


def test_cpu_share_of_the_machine():
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000, "online_cpus": 2},
             "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}}
    assert status._cpu_percent(stats) == 40.0


def test_table_lists_each_server():
    now = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
    servers = [status.Server("alice", "", "labhub/jupyterlab-base:latest", now - datetime.timedelta(minutes=75),
                             12.3, 512 * 2**20, 4096 * 2**20, ""),
               status.Server("bob", "gpu", "labhub/jupyterlab-gpu:latest", now - datetime.timedelta(days=2, hours=3),
                             150.0, 2**30, 8 * 2**30, "0,1")]
    lines = status.table(servers, now).splitlines()
    assert lines[0].split() == ["USER", "SERVER", "IMAGE", "UP", "CPU", "MEMORY", "GPU"]
    assert lines[1].split() == ["alice", "-", "labhub/jupyterlab-base:latest", "1h", "15m", "12%", "512", "/", "4,096", "MiB", "-"]
    assert lines[2].split() == ["bob", "gpu", "labhub/jupyterlab-gpu:latest", "2d", "3h", "150%", "1,024", "/", "8,192", "MiB", "0,1"]
    assert lines[3] == "2 server(s) running"
