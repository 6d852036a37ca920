"""The two deployments a benchmark run compares, brought up with tests/harness.py: LabHub as a
fresh clone runs it (native logins, Traefik in front), and the reference (benchmarks/reference/:
stock DockerSpawner, a JupyterLab image built the usual way, JupyterHub serving TLS itself)."""

import contextlib

import filesystems
import harness
import swarm
from labhub import certs, settings

PASSWORD = "Lab-Notebook-2026"  # every benchmark user's (harness.native_user's default)


def rss_by_process(container: str) -> list[tuple[int, str]]:
    """(RSS in bytes, command line) of each process in a container."""
    lines = harness.docker("top", container, "-eo", "pid,rss,args").splitlines()[1:]
    return [(int(rss) * 1024, args) for _pid, rss, args in (line.split(None, 2) for line in lines)]


class Setup:
    name: str
    user_password = PASSWORD
    deployment: harness.Deployment
    front: tuple[str, ...] = ()  # compose services that route (besides a proxy inside the hub)
    measures_hub_start = False  # the hub restarted with servers running (LabHub's own target)

    def destroy(self) -> None:
        self.deployment.destroy()

    def up(self) -> None:
        result = self.deployment.up(check=False)
        assert result.returncode == 0, f"{self.name}: docker compose up failed:\n{result.stdout[-3000:]}" + \
            self.deployment.compose("logs", "--tail", "40", check=False).stdout[-5000:]

    def admin(self) -> harness.HubClient:
        return self.login("admin")

    def prepare_user(self, admin: harness.HubClient, user: str) -> None:
        """Makes the account, where accounts must be made before a login."""

    def log_in_as_the_reference(self) -> bool:
        """Switches to a login that hashes no password, as the reference's does; False where the
        setup logs in so already."""
        return False

    def login(self, user: str, password: str | None = None) -> harness.HubClient:
        """Logs the user in with `password`, by default the benchmark users' one."""
        password = password or self.user_password
        client = harness.HubClient(self.deployment)
        landed = client.login(user, password)
        assert landed.ok and "/hub/login" not in landed.url, f"{self.name}: login of {user} failed ({landed.status_code})"
        return client

    def user_ip(self, user: str) -> str:
        """The user server's address on its network (LabHub: its own; the reference: the shared
        one), where the hub's proxy reaches it; this machine reaches every bridge network too."""
        return harness.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                              self.deployment.user_container(user)).split()[0]

    def user_image(self, user: str) -> str:
        """The image a user's server runs, by name and id (another image carrying the same flavor
        label on a shared engine could stand in for the one this deployment built)."""
        name, image_id = harness.docker("inspect", "-f", "{{.Config.Image}} {{.Image}}",
                                        self.deployment.user_container(user)).split()
        return f"{name} ({image_id.removeprefix('sha256:')[:12]})"

    def user_rss(self, user: str) -> int:
        return sum(rss for rss, _ in rss_by_process(self.deployment.user_container(user)))

    def memory(self) -> dict[str, int]:
        """RSS of the hub process, and of the proxies (the hub's own and any in front)."""
        hub = rss_by_process(self.deployment.container("hub"))
        front = [rss for service in self.front for rss, _ in rss_by_process(self.deployment.container(service))]
        return {"hub": sum(rss for rss, args in hub if "bin/jupyterhub " in args),
                "proxy": sum(rss for rss, args in hub if "configurable-http-proxy" in args) + sum(front)}


class LabHub(Setup):
    """The repository's deployment without a .env: what a lab gets by default."""
    name = "LabHub"
    front = ("proxy", "chp", "restart-page")
    measures_hub_start = True

    def __init__(self):
        self.deployment = harness.Deployment("labhubbench")
        self.auth = "native"  # LABHUB_AUTH

    def admin(self) -> harness.HubClient:
        return self.login("admin", self.deployment.admin_password())

    def prepare_user(self, admin: harness.HubClient, user: str) -> None:
        if self.auth == "native":
            harness.native_user(self.deployment, admin, user, PASSWORD)

    def log_in_as_the_reference(self) -> bool:
        # LabHub's trial login: anyone with the shared password, nothing hashed (admins keep theirs).
        self.auth, self.user_password = "shared-password", "benchmark-shared-2026"
        (self.deployment.secret / "shared-password").write_text(self.user_password + "\n")
        self.deployment.set_env(auth=self.auth)
        self.up()
        return True

    def lab_image(self) -> str:
        # Built untagged: the shared tag labhub/jupyterlab-base:latest may meanwhile hold another
        # checkout's build, and an untagged image is offered by no hub on the engine.
        return harness.run("docker", "build", "--quiet", "-f", "jupyterlab/base/Dockerfile", ".",
                           cwd=self.deployment.dir).stdout.strip()


class Reference(Setup):
    """Any name and password log in (the dummy authenticator)."""
    name = "reference"

    def __init__(self):
        self.deployment = harness.Deployment("labhubref", compose_file="benchmarks/reference/docker-compose.yml")

    def up(self) -> None:
        # LabHub's setup step makes it so with the default settings (for localhost, its own CA).
        certs.ensure_certificate(self.deployment.secret, settings.load({}))
        super().up()

    def lab_image(self) -> str:
        return "labhub-bench/reference-lab:latest"  # built by `up`


class LabHubWith(LabHub):
    """LabHub with some settings in .env (a deployment of its own, named `project`)."""
    measures_hub_start = False
    project: str
    settings: dict[str, str]

    def __init__(self):
        super().__init__()
        self.deployment = harness.Deployment(self.project)
        self.deployment.base_settings.update(self.settings)  # kept by every later .env

    def up(self) -> None:
        self.deployment.set_env()
        super().up()


class LabHubCollaboration(LabHubWith):
    """LabHub with LABHUB_COLLABORATION=true: every server edits together (jupyter-collaboration)."""
    name = "LabHub with collaboration"
    project, settings = "labhubbenchcollab", {"collaboration": "true"}


class LabHubSwarm(LabHub):
    """LabHub in swarm mode (README, More than one machine) on a two-node swarm of engine
    containers (tests/swarm.py): node1 the manager, where the hub runs, node2 a worker; homes on
    storage both nodes mount. Only its spawns are measured, on each node."""
    name = "LabHub swarm"
    front = ()
    measures_hub_start = False

    def __init__(self):
        self.cluster = swarm.Swarm(harness.free_ports(), name=harness.NAMESPACE + "labhubbench")
        self.deployment = harness.Deployment("labhubbenchswarm", self.cluster.ports,
                                             docker_host=self.cluster.manager.docker_host)
        # The worker offers one (fake) GPU: GPU servers get one each (swarm mode wants a number).
        self.deployment.set_env(swarm="true", home_root=swarm.HOME_ROOT, gpus_per_server="1")
        self.auth = "native"

    def up(self) -> None:
        self.cluster.start(["labhub/hub:latest", "labhub/proxy:latest", "traefik:v3.7", "labhub/jupyterlab-base:latest"])
        # What `./labhub nodes push` copies: the user image, and the hub's (the guard agent runs it there).
        self.cluster.load(self.cluster.worker, ["labhub/jupyterlab-base:latest", "labhub/hub:latest"])
        super().up()

    def destroy(self) -> None:
        super().destroy()
        self.cluster.remove()

    def nodes(self) -> dict[str, swarm.Node]:
        return {"manager": self.cluster.manager, "worker": self.cluster.worker}

    def only_on(self, node: swarm.Node) -> None:
        swarm.only_on(self.deployment, self.cluster, node)


class LabHubHomes(LabHub):
    """LabHub with homes under LABHUB_HOME_ROOT on a btrfs file system of their own (a loop-mounted
    image, as tests/integration/test_quotas.py makes), without home quotas: the quotas setup's
    baseline. Only spawns are measured: new users' first ones and one user's warm ones."""
    name = "LabHub homes on btrfs"
    front = ()
    measures_hub_start = False
    quota = ""  # LABHUB_HOME_QUOTA

    def __init__(self):
        super().__init__()
        self.deployment = harness.Deployment("labhubbenchhomes")
        self.mounted = contextlib.ExitStack()

    def up(self) -> None:
        homes = self.mounted.enter_context(self.home_root())
        self.deployment.set_env(home_root=homes, **({"home_quota": self.quota} if self.quota else {}))
        super().up()

    def home_root(self):
        return filesystems.btrfs_homes("bench-homes", quotas=bool(self.quota))

    def destroy(self) -> None:
        super().destroy()
        self.mounted.close()


class LabHubQuotas(LabHubHomes):
    """The same with LABHUB_HOME_QUOTA: each home a subvolume with its limit, set at each start."""
    name = "LabHub quotas on btrfs"
    quota = "20G"


class LabHubZfsHomes(LabHubHomes):
    """LabHub with the home root a ZFS dataset (zfs-fuse, as tests/integration/test_quotas.py makes),
    without home quotas: the ZFS quotas setup's baseline."""
    name = "LabHub homes on ZFS"

    def home_root(self):
        return filesystems.zfs_homes("bench-zfs-homes")


class LabHubZfsQuotas(LabHubZfsHomes):
    """The same with LABHUB_HOME_QUOTA: each home a dataset with its refquota, made by the host's
    zfs and limited at each start."""
    name = "LabHub quotas on ZFS"
    quota = "20G"


class LabHubMonitoring(LabHubWith):
    """LabHub with its monitoring (COMPOSE_PROFILES=monitoring): warm spawns beside LabHub's, and
    what the monitoring itself takes with the burst's servers running."""
    name = "LabHub with monitoring"
    project, settings = "labhubbenchmon", {"COMPOSE_PROFILES": "monitoring"}
    services = ("prometheus", "alertmanager", "node-exporter", "blackbox", "monitoring-exporter")

    def monitoring_containers(self) -> dict[str, str]:
        return {service: self.deployment.container(service) for service in self.services}

    def run_monitoring(self, running: bool) -> None:
        """Starts or stops the monitoring's services (the hub keeps its side: the admin page, the
        tokens), so that spawns are timed with and without them on one deployment."""
        self.deployment.compose("--profile", "monitoring", "start" if running else "stop", *self.services)

    def monitoring_rss(self) -> dict[str, int]:
        """RSS of each part of the monitoring: its services, and the admin page in the hub's container."""
        rss = {service: sum(r for r, _ in rss_by_process(container)) for service, container in self.monitoring_containers().items()}
        rss["admin page"] = sum(r for r, args in rss_by_process(self.deployment.container("hub")) if "labhub.dashboard" in args)
        return rss


SETUPS = {"labhub": LabHub, "reference": Reference, "collaboration": LabHubCollaboration, "swarm": LabHubSwarm,
          "homes": LabHubHomes, "quotas": LabHubQuotas, "zfs-homes": LabHubZfsHomes, "zfs-quotas": LabHubZfsQuotas,
          "monitoring": LabHubMonitoring}
