"""The spawn form and image list from image labels (the real engine's list is in
tests/integration/test_images.py)."""

from types import SimpleNamespace

from labhub import images


def image(flavor, title, gpu=False, tags=None, **extra):
    labels = {images.FLAVOR_LABEL: flavor, images.TITLE_LABEL: title, images.DESCRIPTION_LABEL: f"{title} things"}
    if gpu:
        labels[images.GPU_LABEL] = "true"
    labels.update(extra)
    return SimpleNamespace(labels=labels, tags=[f"labhub/jupyterlab-{flavor}:latest"] if tags is None else tags)


def engine(*imgs):
    return SimpleNamespace(images=SimpleNamespace(list=lambda filters: list(imgs)))


FLAVORS = engine(image("base", "Python"), image("gpu", "PyTorch", gpu=True, **{images.MEM_LABEL: "16G"}),
                 image("datascience", "R"), image("old", "Untagged", tags=[]))


def test_gpu_flavors_are_offered_only_with_gpus():
    assert list(images.Catalog(FLAVORS, False, "4G", 2).allowed_images()) == ["Python", "R"]
    assert images.Catalog(FLAVORS, True, "4G", 2).allowed_images() == {
        "Python": "labhub/jupyterlab-base:latest", "PyTorch": "labhub/jupyterlab-gpu:latest",
        "R": "labhub/jupyterlab-datascience:latest"}


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
