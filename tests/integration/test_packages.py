"""Users' own packages, environments and kernels, on the real stack, as a user would: through their
server's APIs (kernels over wss, the contents API) and `docker exec` in their container as them.

What a user installs lives in their home: it survives the server's stop and start (each start
makes the container anew) and another image; the server itself never imports it (an incompatible
jupyter_server, tornado or a .pth file of the user's leaves it working), kernels do. Their own
kernels are offered; their own Jupyter config files change nothing, and nothing they place in their
Jupyter folders reaches the JupyterLab page. Every flavor shows memory
against the server's limit, and has jupyterlab-git and nbdime.
"""

import ast
import base64
import hashlib
import io
import json
import time
import uuid
import zipfile

import pytest
import requests
import websocket

import harness

DATASCIENCE = "R and Python (data science)"
HOME = "/home/jovyan"


def wheel(name: str, version: str, files: dict[str, str]) -> tuple[str, bytes]:
    """A pure-Python wheel (file name, bytes), made here: no build tools, no index."""
    dist_info = f"{name}-{version}.dist-info"
    files = {**files,
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: labhub-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def digest(text: str) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},{digest(text)},{len(text.encode())}\n" for path, text in files.items())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in {**files, f"{dist_info}/RECORD": record + f"{dist_info}/RECORD,,\n"}.items():
            archive.writestr(path, text)
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


# Writes, from any Python process that loads the user site, its command line to a log in the home.
PTH_PROBE = ('import os; open(os.path.expanduser("~/user-site-loaded-by.log"), "a")'
             '.write(open("/proc/self/cmdline").read().replace(chr(0), " ") + chr(10))\n')
PROBE = wheel("labhub_probe", "1.0", {"labhub_probe/__init__.py": "WHERE = 'from the home'\n",
                                      "labhub_probe.pth": PTH_PROBE})
BROKEN_SERVER = wheel("jupyter_server", "0.0.1", {"jupyter_server/__init__.py": "raise ImportError('the user’s own jupyter_server')\n"})
BROKEN_TORNADO = wheel("tornado", "0.0.1", {"tornado/__init__.py": "raise ImportError('the user’s own tornado')\n"})


def upload(client, name: str, data: bytes) -> None:
    r = client.server_api("PUT", f"/contents/{name}", json={"type": "file", "format": "base64",
                                                            "content": base64.b64encode(data).decode()})
    assert r.status_code in (200, 201), r.text


def python(client, code: str, kernel: str = "python3", timeout: float = 120) -> str:
    """Runs code in a new kernel of the user's (over wss, through Traefik) and returns the text of
    its last output: an execute_result, or display_data as IRkernel sends."""
    r = client.server_api("POST", "/kernels", json={"name": kernel})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    socket = client.kernel_socket(kernel_id, timeout=5)
    try:
        msg_id = uuid.uuid4().hex
        socket.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": client.user, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False}}))
        deadline, output = time.monotonic() + timeout, None
        while time.monotonic() < deadline:  # the server's pings keep recv() from timing out alone
            try:
                msg = json.loads(socket.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("execute_result", "display_data"):
                output = msg["content"]["data"]["text/plain"]
            elif msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']['ename']}: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return output
        raise TimeoutError(f"{kernel}: {code!r} did not finish in {timeout}s")
    finally:
        socket.close()
        client.server_api("DELETE", f"/kernels/{kernel_id}")


def pip_install(client, *args: str) -> str:
    """`%pip install ...` as a notebook runs it: the kernel's Python's pip, as the user."""
    out = python(client, "import subprocess, sys\n"
                         f"r = subprocess.run([sys.executable, '-m', 'pip', 'install', *{list(args)!r}], capture_output=True, text=True)\n"
                         "(r.returncode, r.stdout + r.stderr)")
    code, output = ast.literal_eval(out)
    assert code == 0, output
    return output


def as_user(stack, client, script: str) -> str:
    """A shell script run in the user's container as the user (the container's own user)."""
    result = harness.run("docker", "exec", stack.user_container(client.user, client.server), "sh", "-c", script,
                         check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def restart(client, **options) -> str:
    """Stops the server and starts it again (a new container); the new container's id."""
    client.stop_server()
    client.start_server(**options)
    return client.deployment.user_container(client.user, client.server)


@pytest.fixture(scope="module")
def user(stack):
    """A user of their own (what they install must not reach the admin's kernels), with a running
    server of the default flavor."""
    admin = harness.HubClient(stack)
    admin.login("admin", stack.admin_password())
    client = harness.native_user(stack, admin, "packer")
    client.start_server()
    try:
        yield client
    finally:
        if stack.user_container(client.user):
            client.stop_server()


def test_an_own_environment_registered_as_a_kernel_is_offered_and_runs(stack, user):
    as_user(stack, user, "python3 -m venv --system-site-packages ~/envs/own"
                         " && ~/envs/own/bin/python -m ipykernel install --user --name own --display-name 'Own env'")
    specs = user.server_api("GET", "/kernelspecs").json()["kernelspecs"]
    assert specs["own"]["spec"]["display_name"] == "Own env"
    assert "python3" in specs  # the image's own kernel is still there
    assert python(user, "import sys; sys.prefix", kernel="own") == repr(f"{HOME}/envs/own")


def test_pip_install_goes_to_the_home_and_outlasts_the_container_and_the_image(stack, user):
    name, data = PROBE
    upload(user, name, data)
    output = pip_install(user, "--no-index", "--no-deps", f"{HOME}/{name}")
    assert "user installation" in output or "Successfully installed labhub_probe" in output, output
    where = python(user, "import labhub_probe; labhub_probe.__file__, labhub_probe.WHERE")
    assert ast.literal_eval(where)[0].startswith(f"{HOME}/.local/lib/python3.")

    container = stack.user_container(user.user)
    assert restart(user) != container  # a new container, the same home
    assert python(user, "import labhub_probe; labhub_probe.WHERE") == "'from the home'"

    restart(user, image=DATASCIENCE)  # another image, as after an upgrade that keeps Python's version
    try:
        assert python(user, "import labhub_probe; labhub_probe.WHERE") == "'from the home'"
    finally:
        restart(user, image="Python (scientific)")


def server_works(stack, user) -> None:
    assert user.server_api("GET", "/status").status_code == 200
    assert user.lab().status_code == 200
    log = as_user(stack, user, "cat ~/user-site-loaded-by.log 2>/dev/null || true")
    assert "jupyterhub.singleuser" not in log, log


def test_the_server_never_imports_the_users_packages_and_kernels_do(stack, user):
    for name, data in (PROBE, BROKEN_SERVER):
        upload(user, name, data)
    pip_install(user, "--no-index", "--no-deps", f"{HOME}/{PROBE[0]}", f"{HOME}/{BROKEN_SERVER[0]}")
    as_user(stack, user, "rm -f ~/user-site-loaded-by.log")
    restart(user)
    server_works(stack, user)
    # Kernels see the user's version, over the image's.
    assert python(user, "import importlib.metadata as m; m.version('jupyter_server')") == "'0.0.1'"
    assert "ipykernel_launcher" in as_user(stack, user, "cat ~/user-site-loaded-by.log")

    # A tornado that cannot even be imported (it breaks the user's own kernels, not the server,
    # so the user can still open a terminal and uninstall it).
    upload(user, *BROKEN_TORNADO)
    as_user(stack, user, f"pip install --no-index --no-deps ~/{BROKEN_TORNADO[0]}")
    restart(user)
    try:
        server_works(stack, user)
        r = user.server_api("POST", "/terminals")
        assert r.status_code == 200, r.text
    finally:
        as_user(stack, user, "pip uninstall --yes tornado jupyter_server labhub_probe")
    assert python(user, "import tornado; tornado.version") != "'0.0.1'"


def test_the_users_jupyter_config_files_change_nothing(stack, user):
    marker = f"{HOME}/user-config-was-read"
    as_user(stack, user, f"""mkdir -p ~/.jupyter ~/.local/etc/jupyter
cat >~/.jupyter/jupyter_server_config.py <<'END'
open("{marker}", "w").write("read")
c.ServerApp.token = ""
c.ServerApp.password = ""
c.ServerApp.disable_check_xsrf = True
c.ServerApp.allow_origin = "*"
c.ServerApp.base_url = "/elsewhere/"
c.ServerApp.ip = "0.0.0.0"
END
echo '{{"ServerApp": {{"allow_origin": "*", "disable_check_xsrf": true, "token": ""}}}}' >~/.jupyter/jupyter_server_config.json
cp ~/.jupyter/jupyter_server_config.json ~/.jupyter/jupyter_config.json
cp ~/.jupyter/jupyter_server_config.py ~/.local/etc/jupyter/jupyter_server_config.py""")
    restart(user)
    try:
        assert user.lab().status_code == 200  # still at its own URL
        assert as_user(stack, user, f"test -e {marker} && echo read || echo unread").strip() == "unread"
        contents = user.url(user.server_path + "api/contents")
        stranger = requests.get(contents, verify=stack.ca_file, allow_redirects=False, timeout=30)
        assert stranger.status_code in (302, 403), stranger.status_code  # to the hub's login, never in
        evil = user.http.get(contents, headers={"Origin": "https://evil.example"}, timeout=30)
        assert "Access-Control-Allow-Origin" not in evil.headers
        no_xsrf = user.http.post(user.url(user.server_path + "api/kernels"), json={"name": "python3"}, timeout=30)
        assert no_xsrf.status_code == 403, no_xsrf.status_code
    finally:
        as_user(stack, user, "rm -rf ~/.jupyter/jupyter_server_config.* ~/.jupyter/jupyter_config.json ~/.local/etc/jupyter")


EVIL = "https://evil.invalid/x"
# What a user can place in their home, or link there, that JupyterLab's page (served to whoever
# opens their server) would read: its page config (extension URLs, from which the page loads
# scripts), default settings (the HTML sanitizer's URL schemes), and, through a data folder linked
# out of the home (JupyterHub's home check follows the link), an extension of their own.
PLANTED = f"""set -e
mkdir -p ~/.jupyter/labconfig
echo '{{"fullLabextensionsUrl": "{EVIL}", "fullStaticUrl": "{EVIL}"}}' >~/.jupyter/labconfig/page_config.json
echo '{{"@jupyterlab/apputils-extension:sanitizer": {{"allowedSchemes": ["javascript"]}}}}' \\
  >~/.jupyter/labconfig/default_setting_overrides.json
mkdir -p ~/.local/share/jupyter && mv ~/.local/share/jupyter ~/.local/share/jupyter.kept
ln -s /dev/shm ~/.local/share/jupyter
"""
EXTENSION = """set -e
mkdir -p /dev/shm/labextensions/evil-extension/static
echo '{"name": "evil-extension", "version": "1.0.0", "jupyterlab": {"_build": {"load": "static/remoteEntry.js"}}}' \\
  >/dev/shm/labextensions/evil-extension/package.json
echo 'alert(document.cookie)' >/dev/shm/labextensions/evil-extension/static/remoteEntry.js
"""


def test_nothing_a_user_places_in_the_home_reaches_the_lab_page(stack, user):
    """JupyterLab's page runs with the visitor's session on LabHub's site (README, Security): the
    server reads none of the user's Jupyter folders for it, not through a link out of the home either."""
    as_user(stack, user, PLANTED)
    try:
        restart(user)  # the link is there when the server starts; what it points to is filled after
        as_user(stack, user, EXTENSION)
        page = user.lab()
        assert page.status_code == 200 and "jupyter-config-data" in page.text
        assert EVIL not in page.text and "evil-extension" not in page.text
        sanitizer = user.http.get(user.url(user.server_path + "lab/api/settings/@jupyterlab/apputils-extension:sanitizer"),
                                  timeout=30)
        assert sanitizer.status_code == 200 and "javascript" not in sanitizer.text, sanitizer.text[:2000]
        extension = user.http.get(user.url(user.server_path + "lab/extensions/evil-extension/static/remoteEntry.js"),
                                  timeout=30)
        assert extension.status_code == 404, extension.status_code
    finally:
        as_user(stack, user, "rm -rf ~/.jupyter/labconfig; [ ! -L ~/.local/share/jupyter ] || "
                             "{ rm ~/.local/share/jupyter && mv ~/.local/share/jupyter.kept ~/.local/share/jupyter; }")
        restart(user)


def test_a_kernels_own_files_are_served_sandboxed(stack, user):
    """A file in a user's kernel folder is served at /user/<name>/kernelspecs/ (for the kernel's
    logo): with a CSP that runs none of its scripts on LabHub's site, as jupyter-server's /files/ are."""
    as_user(stack, user, """set -e
mkdir -p ~/.local/share/jupyter/kernels/planted && cd ~/.local/share/jupyter/kernels/planted
echo '{"argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Planted", "language": "python"}' >kernel.json
echo '<html><script>alert(document.cookie)</script></html>' >page.html
echo '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>' >logo-svg.svg""")
    try:
        assert user.server_api("GET", "/kernelspecs/planted").status_code == 200
        for name in ("page.html", "logo-svg.svg"):
            r = user.http.get(user.url(user.server_path + f"kernelspecs/planted/{name}"), timeout=30)
            assert r.status_code == 200 and "<script>" in r.text, (name, r.status_code)
            policy = [part.strip() for part in r.headers.get("Content-Security-Policy", "").split(";")]
            assert "sandbox" in policy, (name, r.headers)  # sandboxed, and no allow-scripts either
    finally:
        as_user(stack, user, "rm -rf ~/.local/share/jupyter/kernels/planted")


def test_a_notebook_saved_trusted_opens_trusted_after_a_restart(stack, user):
    """Notebook trust is the server's own writing in the home (its data folder is the image's): a
    notebook opens, and one saved with trusted output is still trusted in the next container."""
    output = {"output_type": "display_data", "data": {"text/html": "<b>made here</b>"}, "metadata": {}}
    notebook = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "made-here", "metadata": {"trusted": True},
                           "outputs": [output], "source": "show()"}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    saved = user.server_api("PUT", "/contents/trusted.ipynb", json={"type": "notebook", "format": "json", "content": notebook})
    assert saved.status_code in (200, 201), saved.text
    try:
        restart(user)
        opened = user.server_api("GET", "/contents/trusted.ipynb")
        assert opened.status_code == 200, opened.text
        assert opened.json()["content"]["cells"][0]["metadata"]["trusted"] is True
        as_user(stack, user, "test -s ~/.local/share/jupyter/notebook_secret")
    finally:
        user.server_api("DELETE", "/contents/trusted.ipynb")


def test_kernels_and_terminals_find_jupyters_folders_in_the_home(stack, user):
    """The server's own Jupyter folders are out of the home; its kernels and terminals have them
    where Jupyter puts them for any user, so `ipykernel install --user` from a notebook works."""
    out = python(user, "import subprocess, sys\n"
                       "from jupyter_core.paths import jupyter_config_dir, jupyter_data_dir\n"
                       "r = subprocess.run([sys.executable, '-m', 'ipykernel', 'install', '--user', '--name', 'from-a-notebook'],"
                       " capture_output=True, text=True)\n"
                       "(r.returncode, r.stderr[-500:], jupyter_data_dir(), jupyter_config_dir())")
    code, err, data_dir, config_dir = ast.literal_eval(out)
    try:
        assert code == 0, err
        assert (data_dir, config_dir) == (f"{HOME}/.local/share/jupyter", f"{HOME}/.jupyter")
        assert "from-a-notebook" in user.server_api("GET", "/kernelspecs").json()["kernelspecs"]
        r = user.server_api("POST", "/terminals")
        assert r.status_code == 200, r.text
        name = r.json()["name"]
        terminal = user.server_websocket(f"terminals/websocket/{name}", timeout=30)
        try:
            terminal.send(json.dumps(["stdin", "echo DATA=$(jupyter --data-dir)\r"]))
            seen, deadline = "", time.monotonic() + 30
            while f"DATA={HOME}/.local/share/jupyter" not in seen and time.monotonic() < deadline:
                message = json.loads(terminal.recv())
                seen += message[1] if message[0] == "stdout" else ""
            assert f"DATA={HOME}/.local/share/jupyter" in seen, seen
        finally:
            terminal.close()
            user.server_api("DELETE", f"/terminals/{name}")
    finally:
        as_user(stack, user, "rm -rf ~/.local/share/jupyter/kernels/from-a-notebook")


def test_r_packages_go_to_the_personal_library_and_irkernel_loads_them_after_a_restart(stack, user):
    restart(user, image=DATASCIENCE)
    try:
        as_user(stack, user, """set -e
mkdir -p /tmp/build/labhubprobe/R && cd /tmp/build
printf 'Package: labhubprobe\\nVersion: 1.0\\nTitle: A Probe\\nDescription: Says where it was installed.\\nLicense: MIT\\nAuthor: LabHub\\nMaintainer: LabHub <labhub@example.org>\\n' >labhubprobe/DESCRIPTION
echo 'export(probe)' >labhubprobe/NAMESPACE
echo 'probe <- function() "from the home"' >labhubprobe/R/probe.R
R CMD build --no-manual labhubprobe >/dev/null
cp labhubprobe_1.0.tar.gz ~/""")
        library = python(user, f'install.packages("{HOME}/labhubprobe_1.0.tar.gz", repos = NULL, type = "source"); .libPaths()[1]',
                         kernel="ir")
        assert library.startswith(f'[1] "{HOME}/R/') and "-library/" in library, library
        restart(user, image=DATASCIENCE)
        assert python(user, "library(labhubprobe); probe()", kernel="ir") == '[1] "from the home"'
    finally:
        restart(user, image="Python (scientific)")


@pytest.mark.parametrize("title", ["Python (scientific)", DATASCIENCE])
def test_every_flavor_shows_memory_against_the_servers_limit_and_has_git_and_nbdime(stack, user, title):
    restart(user, image=title)
    container = stack.user_container(user.user)
    metrics = user.server_api("GET", "/metrics/v1").json()
    limit = int(harness.docker("inspect", "-f", "{{.HostConfig.Memory}}", container))
    assert limit > 0 and metrics["limits"]["memory"]["rss"] == limit and metrics["rss"] > 0
    # Its CPU limit in percent, as the CPU use it is compared with (the meter turns red at 90 % of it).
    quota, period = harness.docker("inspect", "-f", "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}}", container).split()
    cpus = int(quota) / int(period)
    assert cpus > 0 and metrics["limits"]["cpu"]["cpu"] == pytest.approx(cpus * 100)
    assert metrics["limits"]["cpu"]["warn"] == (metrics["cpu_percent"] > 0.9 * cpus * 100)
    log = harness.docker("logs", container)
    for extension in ("jupyter_resource_usage", "jupyterlab_git", "nbdime"):
        assert f"{extension} | extension was successfully loaded" in log, log[-3000:]
    lab = user.lab().text
    for frontend in ("@jupyter-server/resource-usage", "@jupyterlab/git", "nbdime-jupyterlab"):
        assert frontend in lab
    assert as_user(stack, user, "git --version >/dev/null && command -v nbdime >/dev/null && echo found").strip() == "found"
