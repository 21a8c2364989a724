"""The hub's configurations, checked as far as they can be without a cluster.

The one-machine and Slurm configurations are loaded with traitlets' config loader, every setting is
checked to be a configurable trait of its class, and the classes are built from them (which
validates each value); the Slurm batch script is rendered for both resource choices. The Kubernetes
values (Zero to JupyterHub) are loaded as YAML: the profiles, the exchange on a ReadWriteMany
volume, and every KubeSpawner override validated against KubeSpawner's traits. JupyterHub,
batchspawner and kubespawner live in the hub environment (make hub-env), so those checks run
there; without it they are skipped with the reason (a failure under DIGM_REQUIRE_HUB=1).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from classroom import HUB_PYTHON
from conftest import REPO_ROOT

from tools.hub.state import INSTRUCTOR_PLUGINS

pytestmark = pytest.mark.hub

HUB = REPO_ROOT / "hub"
VALUES = yaml.safe_load((HUB / "k8s" / "values.yaml").read_text())
PROFILES = VALUES["singleuser"]["profileList"]

# Run with the hub environment's Python: load a config file, check each setting against the traits
# of its class, build the classes from it, and report what it found as JSON.
_CHECK_CONFIG = r"""
import json, os, sys
from traitlets import TraitError
from traitlets.config import Configurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader
from jupyterhub.app import JupyterHub
from jupyterhub.proxy import ConfigurableHTTPProxy
from batchspawner.batchspawner import format_template

def check(path):
    loader = JSONFileConfigLoader if path.endswith(".json") else PyFileConfigLoader
    cfg = loader(os.path.basename(path), path=os.path.dirname(path)).load_config()
    app = JupyterHub(config=cfg)
    authenticator_class, spawner_class = app.authenticator_class, app.spawner_class
    # A section may name the class in use or any class it inherits settings from (Spawner, OAuthenticator).
    classes = {c.__name__: c for k in (JupyterHub, ConfigurableHTTPProxy, authenticator_class, spawner_class)
               for c in k.__mro__ if isinstance(c, type) and issubclass(c, Configurable)}
    problems = []
    for section, settings in cfg.items():
        if section not in classes:
            problems.append(f"{section}: not a class this hub uses")
            continue
        traits = classes[section].class_traits(config=True)
        problems += [f"{section}.{key}: no such setting" for key in settings if key not in traits]
    out = {"problems": problems, "spawner": spawner_class.__name__, "authenticator": authenticator_class.__name__,
           "scripts": {}}
    try:
        authenticator = authenticator_class(config=cfg)
        spawner = spawner_class(config=cfg)
        ConfigurableHTTPProxy(config=cfg)
    except (TraitError, ValueError) as exc:
        problems.append(f"invalid value: {type(exc).__name__}: {exc}")
    else:
        out["allowed_groups"] = sorted(getattr(authenticator, "allowed_groups", []))
        out["services"] = [s["name"] for s in app.services]
        if spawner_class.__name__ == "SlurmSpawner":
            subvars = {t[4:]: getattr(spawner, t) for t in spawner.trait_names()
                       if t.startswith("req_") and t not in ("req_username", "req_homedir", "req_keepvars")}
            subvars.update(username="student", homedir="/home/student", keepvars="PATH", cmd="SINGLEUSER-CMD")
            for choice in ("cpu", "gpu"):
                options = spawner.options_from_form({"profile": [choice]})
                out["scripts"][choice] = format_template(spawner.batch_script, **{**subvars, **options})
            try:
                spawner.options_from_form({"profile": ["everything"]})
                problems.append("an unknown resource choice was accepted")
            except ValueError as exc:
                out["unknown_choice"] = str(exc)
    return out


print(json.dumps({path: check(path) for path in sys.argv[1:]}))
"""

# KubeSpawner's traits for each profile's overrides: argv[1] is JSON {profile slug: overrides}.
_CHECK_KUBESPAWNER = r"""
import json, sys
from kubespawner import KubeSpawner
from traitlets import TraitError
traits = KubeSpawner.class_traits(config=True)
spawner = KubeSpawner.__new__(KubeSpawner)  # not started: no cluster needed to validate values
problems = []
for slug, overrides in json.loads(sys.argv[1]).items():
    for key, value in overrides.items():
        if key not in traits:
            problems.append(f"{slug}: {key} is not a KubeSpawner setting")
            continue
        try:
            traits[key].validate(spawner, value)
        except TraitError as exc:
            problems.append(f"{slug}: {key}: {exc}")
for key in ("uid", "gid", "fs_gid"):
    try:
        traits[key].validate(spawner, lambda spawner: 1000)
    except TraitError as exc:
        problems.append(f"{key} takes no callable: {exc}")
print(json.dumps(problems))
"""


def _hub_python(script: str, *args: str) -> dict | list:
    if not HUB_PYTHON.exists():
        reason = f"{HUB_PYTHON} is missing (make hub-env): JupyterHub and the spawners live there"
        if os.environ.get("DIGM_REQUIRE_HUB", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"DIGM_REQUIRE_HUB=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [str(HUB_PYTHON), "-c", script, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"the check failed in the hub environment:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


CONFIG_FILES = {
    "one machine": HUB / "jupyterhub_config.py",
    "slurm": HUB / "slurm" / "jupyterhub_config.py",
    "oauth_example.py": HUB / "auth" / "oauth_example.py",
    "ldap_example.py": HUB / "auth" / "ldap_example.py",
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict]:
    """Every configuration file checked in one run of the hub environment's Python; the Kubernetes
    hub's `hub.config` (what the chart hands to JupyterHub as traitlets config) as "k8s hub.config"."""
    k8s = tmp_path_factory.mktemp("k8s") / "hub_config.json"
    k8s.write_text(json.dumps(VALUES["hub"]["config"]))
    files = {**CONFIG_FILES, "k8s hub.config": k8s}
    found = _hub_python(_CHECK_CONFIG, *map(str, files.values()))
    return {name: found[str(path)] for name, path in files.items()}


@pytest.fixture
def one_machine(checked) -> dict:
    return checked["one machine"]


@pytest.fixture
def slurm(checked) -> dict:
    return checked["slurm"]


def test_one_machine_config_uses_only_real_settings(one_machine):
    assert one_machine["problems"] == []
    assert (one_machine["spawner"], one_machine["authenticator"]) == ("LocalProcessSpawner", "PAMAuthenticator")
    assert one_machine["allowed_groups"] == ["digm-instructors", "digm-students"]
    assert "idle-culler" in one_machine["services"]


def test_slurm_config_uses_only_real_settings(slurm):
    assert slurm["problems"] == []
    assert slurm["spawner"] == "SlurmSpawner"
    assert "idle-culler" in slurm["services"], "the Slurm hub keeps the one-machine hub's idle culler"
    assert "Unknown resource choice" in slurm["unknown_choice"]


def test_slurm_batch_script_asks_for_a_gpu_only_in_the_gpu_choice(slurm):
    cpu, gpu = slurm["scripts"]["cpu"], slurm["scripts"]["gpu"]
    for script in (cpu, gpu):
        assert script.startswith("#!/bin/bash\n")
        assert re.search(r"^srun SINGLEUSER-CMD$", script, re.M), script
        assert "{{" not in script and "{%" not in script, f"an unfilled template field:\n{script}"
    assert "#SBATCH --gres=gpu:1" in gpu and "--gres" not in cpu
    assert "#SBATCH --partition=gpu" in gpu and "#SBATCH --partition=cpu" in cpu


def test_kubernetes_profiles_have_the_keys_kubespawner_reads():
    assert len(PROFILES) >= 2
    for profile in PROFILES:
        assert {"display_name", "slug", "description", "kubespawner_override"} <= set(profile), profile
    assert sum(bool(p.get("default")) for p in PROFILES) == 1, "exactly one profile is the default"
    gpu = [p for p in PROFILES if "nvidia.com/gpu" in p["kubespawner_override"].get("extra_resource_limits", {})]
    cpu = [p for p in PROFILES if p not in gpu]
    assert gpu and cpu, "a CPU profile and a GPU profile"
    assert gpu[0]["kubespawner_override"].get("image") != VALUES["singleuser"]["image"]["name"], (
        "the GPU profile runs an image with a CUDA build of torch"
    )


def test_kubernetes_hub_config_uses_only_real_authenticator_settings(checked):
    assert checked["k8s hub.config"]["problems"] == []
    assert checked["k8s hub.config"]["authenticator"] == "GenericOAuthenticator"


def test_kubernetes_overrides_are_valid_kubespawner_settings():
    overrides = {p["slug"]: p["kubespawner_override"] for p in PROFILES}
    assert _hub_python(_CHECK_KUBESPAWNER, json.dumps(overrides)) == []


def test_kubernetes_exchange_is_a_shared_read_write_volume_in_every_pod():
    pvc = yaml.safe_load((HUB / "k8s" / "exchange-pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    storage = VALUES["singleuser"]["storage"]
    (volume,) = [v for v in storage["extraVolumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (mount,) = [m for m in storage["extraVolumeMounts"] if m["name"] == volume["name"]]
    assert VALUES["singleuser"]["extraEnv"]["DIGM_EXCHANGE"] == mount["mountPath"]
    assert VALUES["cull"]["enabled"] is True


def test_kubernetes_extra_config_runs():
    from traitlets.config import Config

    for name, source in VALUES["hub"]["extraConfig"].items():
        c = Config()
        exec(compile(source, name, "exec"), {"c": c})  # the hub runs it the same way, with its c
        assert callable(c.KubeSpawner.uid), f"{name} should give each user a Unix id of its own"


def test_course_image_installs_the_bundle_and_the_tested_versions():
    dockerfile = (HUB / "k8s" / "Dockerfile").read_text()
    assert "COPY build/student-bundle " in dockerfile
    assert '"torch==2.13.0"' in dockerfile
    hub_pin = re.search(r"^jupyterhub==(\S+)$", (HUB / "requirements.txt").read_text(), re.M)[1]
    assert f'"jupyterhub=={hub_pin}"' in dockerfile, "the image's jupyterhub-singleuser must match the hub"
    assert "solutions" not in dockerfile.replace("no solutions/", "")
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert source.startswith("build/") or (REPO_ROOT / source).exists(), f"COPY of a missing {source}"
    disabled = json.loads(re.search(r"'(\{\"disabledExtensions\".*?\})'", dockerfile)[1])["disabledExtensions"]
    assert set(disabled) == set(INSTRUCTOR_PLUGINS), "the image hides the same panels as the one-machine hub"


@pytest.mark.parametrize(
    ("example", "authenticator"),
    [("oauth_example.py", "LocalGenericOAuthenticator"), ("ldap_example.py", "LDAPAuthenticator")],
)
def test_authenticator_examples_configure_real_authenticators(checked, example, authenticator):
    assert checked[example]["problems"] == []
    assert checked[example]["authenticator"] == authenticator
    assert len(checked[example]["allowed_groups"]) == 2, "only the course's students and instructors may log in"
