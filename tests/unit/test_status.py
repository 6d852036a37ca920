import datetime
from types import SimpleNamespace

from labhub import status


def test_cpu_share_of_the_machine():
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000, "online_cpus": 2},
             "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}}
    assert status._cpu_percent(stats) == 40.0
    assert status._cpu_percent({**stats, "precpu_stats": {}}) is None  # a sample with no earlier one to compare


def test_memory_in_use_leaves_out_the_cache_the_kernel_can_drop():
    assert status.memory_used({"memory_stats": {"usage": 900, "stats": {"inactive_file": 300}}}) == 600  # cgroup v2
    assert status.memory_used({"memory_stats": {"usage": 900, "stats": {"total_inactive_file": 100}}}) == 800  # v1
    assert status.memory_used({}) == 0


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
    unlimited = status.Server("cy", "", "labhub/jupyterlab-base:latest", now, None, 3 * 2**20, 0, "")
    assert "3 MiB, no limit" in status.table([unlimited], now)


def test_in_swarm_mode_each_server_shows_its_node_and_its_limit():
    now = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
    servers = [status.Server("alice", "", "labhub/jupyterlab-base:latest", now - datetime.timedelta(minutes=5),
                             None, None, 4096 * 2**20, "GPU-1", node="gpu-box")]
    lines = status.table(servers, now).splitlines()
    assert lines[0].split() == ["USER", "SERVER", "IMAGE", "UP", "CPU", "MEMORY", "GPU", "NODE"]
    assert lines[1].split() == ["alice", "-", "labhub/jupyterlab-base:latest", "0h", "05m", "-", "-", "/", "4,096", "MiB",
                                "GPU-1", "gpu-box"]


class Container(SimpleNamespace):
    """A running server's container as docker-py lists it (inspected)."""

    def __init__(self, name, env=()):
        super().__init__(name=name, labels={},
                         attrs={"Config": {"Image": "labhub/jupyterlab-base:latest", "Env": ["PATH=/usr/bin", *env]},
                                "HostConfig": {},
                                "State": {"StartedAt": "2026-11-22T11:00:00.123456789Z"}})

    def stats(self, stream):
        return {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "precpu_stats": {}, "memory_stats": {}}


def listed(*containers):
    engine = SimpleNamespace(containers=SimpleNamespace(list=lambda filters: list(containers)))
    stack = SimpleNamespace(container_prefix="lab-user")
    return [(s.user, s.name) for s in status.servers(engine, stack)]


def test_users_and_servers_are_shown_by_their_own_names_not_as_escaped_in_container_names():
    """DockerSpawner escapes the user in the container name (ht-0 -> ht-2d0) and lowercases the
    server name; JupyterHub gives each server both names, as they are, in its environment."""
    assert listed(
        Container("lab-user-ht-2d0", ["JUPYTERHUB_USER=ht-0", "JUPYTERHUB_SERVER_NAME="]),
        Container("lab-user-ann-2esmith--gpu-2drun", ["JUPYTERHUB_USER=ann.smith", "JUPYTERHUB_SERVER_NAME=GPU-run"]),
    ) == [("ann.smith", "GPU-run"), ("ht-0", "")]


def test_a_container_without_those_names_is_shown_by_its_unescaped_name():
    assert listed(Container("lab-user-ht-2d0"), Container("lab-user-bob--gpu-2drun")) == [("bob", "gpu-run"), ("ht-0", "")]


def test_homes_are_listed_fullest_first_with_their_user_names_and_quotas(monkeypatch):
    """Without quotas: largest first, no quota column values. With them: fullest first, a quota a
    file system enforces shown as such, one it cannot shown as not enforced."""
    measured = "ann 1048576 0\nht-2d0 5242880 0\n"  # the folders as named: escaped
    stack = SimpleNamespace(run_helper=lambda engine, command, mounts: measured.encode())
    monkeypatch.setattr(status.storage, "home_mounts", lambda engine, stack, s, root, quotas=None: ["mounts"])
    found = status.homes(None, stack, SimpleNamespace(home_quota=""))
    assert found == [status.Home("ht-0", 5 * 2**20, 0, False), status.Home("ann", 2**20, 0, False)]
    lines = status.homes_table(found).splitlines()
    assert [line.split() for line in lines[:3]] == [["USER", "SIZE", "QUOTA", "USE"], ["ht-0", "5.0", "MiB", "-", "-"],
                                                    ["ann", "1.0", "MiB", "-", "-"]]
    assert lines[3] == "2 home(s), 6.0 MiB in all"


def test_with_quotas_the_fullest_home_comes_first_and_a_home_near_its_quota_is_reported():
    found = sorted([status.Home("big", 8 * 2**30, 100 * 2**30, True), status.Home("full", 19 * 2**30, 20 * 2**30, True),
                    status.Home("free", 2**30, 0, False), status.Home("measured", 2**30, 2 * 2**30, False)],
                   key=status._fullest_first)
    lines = status.homes_table(found).splitlines()
    assert [line.split()[0] for line in lines[1:5]] == ["full", "measured", "big", "free"]
    assert lines[1].split()[1:] == ["19.0", "GiB", "20.0", "GiB", "95%"]
    assert lines[2].split()[3:] == ["2.0", "GiB", "(not", "enforced)", "50%"]
    assert lines[5] == "4 home(s), 29.0 GiB in all; 1 at 90% of their quota or more"
    running = [status.Server(user, "", "img", None, None, None, None, "") for user in ("full", "big")]
    assert status.near_full(found, running) == ["full's home is 95% full (19.0 GiB of 20.0 GiB): their saves fail at the quota"]


def test_in_swarm_mode_servers_are_the_services_running_tasks_with_their_node():
    service = {"ID": "s1", "Spec": {"Name": "lab-user-ann", "TaskTemplate": {
        "ContainerSpec": {"Image": "labhub/jupyterlab-base:latest@sha256:ab", "Env": ["JUPYTERHUB_USER=ann"]},
        "Resources": {"Limits": {"MemoryBytes": 2**30}}}}}
    task = {"ServiceID": "s1", "NodeID": "n2", "Status": {"Timestamp": "2026-11-22T11:55:00.123456789Z"},
            "GenericResources": [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-1"}}]}
    node = {"ID": "n2", "Spec": {"Role": "worker", "Availability": "active"}, "Status": {"State": "ready"},
            "Description": {"Hostname": "gpu-box", "Resources": {}}}
    engine = SimpleNamespace(api=SimpleNamespace(services=lambda filters: [service], tasks=lambda filters: [task],
                                                 nodes=lambda: [node]))
    stack = SimpleNamespace(container_prefix="lab-user")
    [ann] = status.servers(engine, stack, swarm_mode=True)
    assert (ann.user, ann.image, ann.node, ann.gpus, ann.memory_limit) == \
        ("ann", "labhub/jupyterlab-base:latest", "gpu-box", "GPU-1", 2**30)


HOSTILE = "eve\x1b[2J\r\n\u202eevil\\x1b"  # clears the screen, overwrites the line, turns text around
SHOWN = r"eve\x1b[2J\r\n\u202eevil\\x1b"  # as printed: every character there, none acting on the terminal


def test_names_are_printed_escaped_in_status_homes_and_nodes(monkeypatch):
    """User and server names come from what users chose (a sign-up name, a folder's or a volume's
    name, unescaped): no control character, line break or bidi override reaches the admin's terminal."""
    now = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
    servers = [status.Server(HOSTILE, HOSTILE, "labhub/jupyterlab-base:latest", now, 1.0, 0, 2**30, "", node=HOSTILE)]
    node = {"ID": "n1", "Spec": {"Role": "worker", "Availability": "active"}, "Status": {"State": "ready"},
            "Description": {"Hostname": HOSTILE, "Resources": {}}}
    engine = SimpleNamespace(api=SimpleNamespace(services=lambda filters: [], tasks=lambda filters: [], nodes=lambda: [node]))
    for printed in (status.table(servers, now), status.homes_table([status.Home(HOSTILE, 2**20, 0, False)]), status.nodes_table(engine)):
        assert all(ch.isprintable() for line in printed.splitlines() for ch in line), printed
        assert SHOWN in printed.splitlines()[1]
    assert status.table(servers, now).splitlines()[1].split()[:3] == [SHOWN, SHOWN, "labhub/jupyterlab-base:latest"]
