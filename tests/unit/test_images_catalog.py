"""The spawn form and image list from image labels (the real engine's list is in
tests/integration/test_images.py)."""

from types import SimpleNamespace

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


def test_limits_follow_the_chosen_flavor():
    catalog = images.Catalog(FLAVORS, True, "4G", 2)
    chose = lambda title: SimpleNamespace(user_options={"image": title} if title else {})
    assert catalog.mem_limit_for(chose("PyTorch")) == "16G"
    assert catalog.mem_limit_for(chose("R")) == "4G" == catalog.mem_limit_for(chose(None))


def test_one_look_at_the_engine_serves_a_burst_of_spawns(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(images.time, "monotonic", lambda: now[0])
    flavors = engine(image("base", "Python"))
    catalog = images.Catalog(flavors, False, "4G", 2)
    spawner = SimpleNamespace(user_options={})
    for _ in range(20):
        catalog.allowed_images(spawner), catalog.mem_limit_for(spawner), catalog.cpu_limit_for(spawner)
        catalog.options_form(spawner)
    assert len(flavors.looks) == 1

    flavors.built.append(image("datascience", "R"))
    assert list(catalog.allowed_images(spawner)) == ["Python"]
    now[0] += images.LOOK_SECONDS + 0.1
    assert list(catalog.allowed_images(spawner)) == ["Python", "R"]
    assert len(flavors.looks) == 2
