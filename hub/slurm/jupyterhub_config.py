"""JupyterHub on a university's Slurm cluster: each server is a batch job (batchspawner's SlurmSpawner).

The one-machine hub (hub/jupyterhub_config.py) with its spawner replaced: the hub runs on a login or
service node as root (it submits each job as its user), and every server runs on a compute node
as a Slurm job. What must be on a filesystem shared by the hub's node and the compute nodes, at the
same paths: the hub environment (HUB_ENV), HUB_STATE (the served course bundle, the role configs)
and the exchange (HUB_EXCHANGE), and the users' homes. hub/README.md, "Slurm", lists the steps:

    sudo HUB_ENV=/shared/digm-hub HUB_STATE=/shared/digm-state \\
        HUB_CONFIG_FILE=hub/slurm/jupyterhub_config.py make hub

A user chooses CPU or GPU on the spawn page; each choice is a set of Slurm requests (partition,
cores, memory, time, GPUs) filled into the batch script below. tests/test_hub_configs.py loads this
file with traitlets, checks every setting against batchspawner's and JupyterHub's traits and renders
the script for both choices; no job has been submitted from it.
"""

import os
import socket
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub injects get_config into config files)
load_subconfig(str(Path(__file__).resolve().parents[1] / "jupyterhub_config.py"))  # noqa: F821

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
# Compute nodes call the hub's API: it listens on the node's address, not on loopback.
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = os.environ.get("HUB_CONNECT_IP") or socket.getfqdn()
# A job may wait in the queue; JupyterHub keeps the spawn page open meanwhile.
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 120

# The choices on the spawn page, as Slurm requests. Partition names and sizes are the cluster's.
PROFILES = {
    "cpu": {"partition": "cpu", "nprocs": "4", "memory": "16G", "runtime": "04:00:00", "gres": ""},
    "gpu": {"partition": "gpu", "nprocs": "8", "memory": "32G", "runtime": "04:00:00", "gres": "gpu:1"},
}
c.SlurmSpawner.options_form = """
<label for="profile">Resources for this session</label>
<select name="profile" id="profile" class="form-control">
  <option value="cpu" selected>CPU: 4 cores, 16 GB, 4 hours (lectures and assignments)</option>
  <option value="gpu">GPU: 1 GPU, 8 cores, 32 GB, 4 hours (full-mode training)</option>
</select>
"""


def options_from_form(formdata):
    """The chosen profile's Slurm requests; batchspawner fills them into the batch script."""
    choice = (formdata.get("profile") or ["cpu"])[0]
    if choice not in PROFILES:
        raise ValueError(f"Unknown resource choice {choice!r}; pick one of {', '.join(PROFILES)}.")
    return dict(PROFILES[choice])


c.SlurmSpawner.options_from_form = options_from_form
# The defaults when no form was shown (a server started through the API).
c.SlurmSpawner.req_partition = PROFILES["cpu"]["partition"]
c.SlurmSpawner.req_nprocs = PROFILES["cpu"]["nprocs"]
c.SlurmSpawner.req_memory = PROFILES["cpu"]["memory"]
c.SlurmSpawner.req_runtime = PROFILES["cpu"]["runtime"]
# torch would start a thread per core of the node, not of the job
c.SlurmSpawner.req_prologue = "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}"
c.SlurmSpawner.batch_script = """#!/bin/bash
#SBATCH --job-name=digm-{{username}}
#SBATCH --output={{homedir}}/.digm-jupyter-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
#SBATCH --get-user-env=L
{% if partition %}#SBATCH --partition={{partition}}
{% endif %}{% if runtime %}#SBATCH --time={{runtime}}
{% endif %}{% if memory %}#SBATCH --mem={{memory}}
{% endif %}{% if gres %}#SBATCH --gres={{gres}}
{% endif %}{% if nprocs %}#SBATCH --cpus-per-task={{nprocs}}
{% endif %}{% if account %}#SBATCH --account={{account}}
{% endif %}{% if options %}#SBATCH {{options}}
{% endif %}
set -euo pipefail
trap 'echo SIGTERM received' TERM
{{prologue}}
{% if srun %}{{srun}} {% endif %}{{cmd}}
echo "jupyterhub-singleuser ended"
{{epilogue}}
"""
