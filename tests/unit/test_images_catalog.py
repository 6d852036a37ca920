"""The spawn form and image list from image labels (the real engine's list is in
tests/integration/test_images.py)."""

import asyncio
from types import SimpleNamespace

import pytest
from dockerspawner import DockerSpawner
from tornado import web

from labhub import images


def image(flavor, title, gpu=False, tags=None, created=1700000000, **extra):
    labels = {images.FLAVOR_LABEL: flavor, images.TITLE_LABEL: title, images.DESCRIPTION_LABEL: f"{title} things"}
    if gpu:
        labels[images.GPU_LABEL] = "true"
    labels.update(extra)
    return {"Labels": labels, "RepoTags": [f"labhub/jupyterlab-{flavor}:latest"] if tags is None else tags,
            "Created": created}


def engine(*imgs):
    """An engine whose image list (GET /images/json) holds these images (more can be built); it
    counts the looks."""
    def images(filters):
        looks.append(filters)
        return [i for i in built if filters["label"] in i["Labels"]]
    built, looks = list(imgs), []
    return SimpleNamespace(api=SimpleNamespace(images=images), built=built, looks=looks)


FLAVORS = engine(image("base", "Python"), image("gpu", "PyTorch", gpu=True, **{images.MEM_LABEL: "16G"}),
                 image("datascience", "R"), image("old", "Untagged", tags=[]),
                 image("older", "Untagged", tags=["<none>:<none>"]))


def test_gpu_flavors_are_offered_only_with_gpus():
    assert list(images.Catalog(FLAVORS, False, "4G", 2).allowed_images()) == ["Python", "R"]
    assert images.Catalog(FLAVORS, True, "4G", 2).allowed_images() == {
        "Python": "labhub/jupyterlab-base:latest", "PyTorch": "labhub/jupyterlab-gpu:latest",
        "R": "labhub/jupyterlab-datascience:latest"}


def test_of_two_images_of_one_flavor_the_newest_is_offered():
    for built in ((image("base", "Python", tags=["mine/base:old"], created=1), image("base", "Python")),
                  (image("base", "Python"), image("base", "Python", tags=["mine/base:old"], created=1))):
        assert images.Catalog(engine(*built), False, "4G", 2).allowed_images() == {"Python": "labhub/jupyterlab-base:latest"}


def test_form_marks_gpu_flavors_unavailable_and_shows_limits():
    form = images.Catalog(FLAVORS, False, "4G", 2).options_form(None)
    pytorch = next(line for line in form.splitlines() if "PyTorch" in line)
    assert "disabled" in pytorch and "unavailable: this machine has no GPU" in pytorch
    assert "up to 16GB memory, 2 CPUs" in pytorch and "up to 4GB memory, 2 CPUs" in form


def started(catalog, user_options: dict, body: bytes = b""):
    """A DockerSpawner as JupyterHub prepares it for a start: the catalog's hook applied by
    JupyterHub's own runner, with the request that started it (its body: the options it sent)."""
    spawner = DockerSpawner(apply_user_options=catalog.apply_user_options, user=SimpleNamespace(name="ann"))
    spawner.orm_spawner = SimpleNamespace(user_options=user_options, server=None, name="")
    spawner.handler = SimpleNamespace(request=SimpleNamespace(body=body, query_arguments={}))
    spawner.user_options = user_options
    asyncio.run(spawner._run_apply_user_options(user_options))
    return spawner


def test_limits_follow_the_flavor_chosen_for_this_start():
    catalog = images.Catalog(FLAVORS, True, "4G", 2)
    first = started(catalog, {"image": "PyTorch"}, b'{"image": "PyTorch"}')
    assert (first.image, first.mem_limit, first.cpu_limit) == ("labhub/jupyterlab-gpu:latest", 16 * 2**30, 2)
    for options in ({"image": "R"}, {}):
        spawner = started(catalog, options)
        assert spawner.mem_limit == 4 * 2**30 and spawner.image != "labhub/jupyterlab-gpu:latest"


def test_a_choice_not_offered_is_refused_when_asked_for_and_forgotten():
    catalog = images.Catalog(FLAVORS, False, "4G", 2)
    with pytest.raises(web.HTTPError) as refused:
        started(catalog, {"image": "debian"}, b'{"image": "debian"}')
    assert refused.value.status_code == 400 and "'debian' is not offered here" in refused.value.log_message


def test_a_remembered_choice_no_longer_offered_falls_back_to_the_default(caplog):
    catalog = images.Catalog(FLAVORS, False, "4G", 2)  # no GPU: PyTorch is not offered here
    spawner = started(catalog, {"image": "PyTorch"})  # a plain start: no body
    assert spawner.image == "labhub/jupyterlab-base:latest" and spawner.mem_limit == 4 * 2**30
    assert spawner.user_options == {} and spawner.orm_spawner.user_options == {}
    assert "the remembered choice 'PyTorch' is not offered any more" in caplog.text


def test_one_look_at_the_engine_serves_a_burst_of_spawns(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(images.time, "monotonic", lambda: now[0])
    flavors = engine(image("base", "Python"))
    catalog = images.Catalog(flavors, False, "4G", 2)
    spawner = SimpleNamespace(user_options={})
    for _ in range(20):
        catalog.allowed_images(spawner), catalog.limits(catalog.chosen(spawner))
        catalog.options_form(spawner)
    assert len(flavors.looks) == 1

    flavors.built.append(image("datascience", "R"))
    assert list(catalog.allowed_images(spawner)) == ["Python"]
    now[0] += images.LOOK_SECONDS + 0.1
    assert list(catalog.allowed_images(spawner)) == ["Python", "R"]
    assert len(flavors.looks) == 2
