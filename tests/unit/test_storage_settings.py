import json

import pytest

from labhub import settings, storage
from labhub.settings import SettingError


def load(**labhub):
    return settings.load({f"LABHUB_{k.upper()}": v for k, v in labhub.items()})


@pytest.mark.parametrize("env, message", [
    ({"home_root": "homes"}, "LABHUB_HOME_ROOT: 'homes' is not an absolute host path"),
    ({"data_mounts": "/data"}, "LABHUB_DATA_MOUNTS: '/data' is not host:container[:ro|rw]"),
    ({"data_mounts": "/data:/data:rwx"}, "LABHUB_DATA_MOUNTS: '/data:/data:rwx' is not host:container[:ro|rw]"),
    ({"user_ids": "per-user"}, "LABHUB_USER_IDS: per-user ids need home folders on the host; set LABHUB_HOME_ROOT too"),
    ({"first_uid": "1000"}, "LABHUB_FIRST_UID: '1000' is not a number from 1001"),
])
def test_storage_settings_refused_with_one_line(env, message):
    with pytest.raises(SettingError) as e:
        load(**env)
    assert str(e.value).startswith(message)


def test_data_mounts_are_read_only_unless_said():
    mounts = load(data_mounts="/data:/home/jovyan/data, /scratch/:/scratch:rw").data_mounts
    assert [(m.host, m.container, m.read_only) for m in mounts] == [
        ("/data", "/home/jovyan/data", True), ("/scratch", "/scratch", False)]


def test_host_folders_name_their_setting():
    s = load(home_root="/srv/homes", shared_dir="/data/shared", data_mounts="/data:/d")
    assert storage.host_folders(s) == {"/srv/homes": "HOME_ROOT", "/data/shared": "SHARED_DIR", "/data": "DATA_MOUNTS"}


def test_user_ids_are_given_once_and_remembered(tmp_path):
    ids = storage.UserIds(20000, tmp_path / "ids.json")
    assert (ids("ann"), ids("jo-2danne"), ids("ann")) == (20000, 20001, 20000)
    again = storage.UserIds(20000, tmp_path / "ids.json")
    assert (again("jo-2danne"), again("zo-c3-ab")) == (20001, 20002)
    assert json.loads((tmp_path / "ids.json").read_text()) == {"ann": 20000, "jo-2danne": 20001, "zo-c3-ab": 20002}
