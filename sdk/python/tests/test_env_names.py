"""Job identity from launcher environments, and metric-name sanitising."""

from __future__ import annotations

import pytest

from trainwatch.env import job_id_from_env, placement_from_env, sanitize_job_id
from trainwatch.names import metric_name


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"TRAINWATCH_JOB_ID": "mine", "SLURM_JOB_ID": "42"}, "mine"),
        ({"TORCHELASTIC_RUN_ID": "rdzv-7", "SLURM_JOB_ID": "42"}, "rdzv-7"),
        # torchrun's default --rdzv-id is "none": it names nothing.
        ({"TORCHELASTIC_RUN_ID": "none", "SLURM_JOB_ID": "42"}, "42"),
        ({"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}, "40_3"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_NAME": "bert-ft"}, "bert-ft"),
        ({"JOBSET_NAME": "llama"}, "llama"),
        ({"JOB_NAME": "not-on-kubernetes"}, None),
        ({}, None),
    ],
)
def test_job_id_precedence(env, expected):
    assert job_id_from_env(env, podinfo_labels="/nonexistent") == expected


def test_job_id_from_the_downward_api_labels_file(tmp_path):
    labels = tmp_path / "labels"
    labels.write_text('app="trainer"\nbatch.kubernetes.io/job-name="gpt-pretrain"\n')
    assert job_id_from_env({"KUBERNETES_SERVICE_HOST": "x"}, podinfo_labels=str(labels)) == "gpt-pretrain"


def test_job_ids_are_made_acceptable_to_the_server():
    assert sanitize_job_id("  my run #3 ") == "my-run--3"
    assert sanitize_job_id("-_x") == "x"
    assert len(sanitize_job_id("a" * 300)) == 200


def test_placement_from_torchrun_slurm_and_mpi():
    assert placement_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == (3, 1, 8)
    assert placement_from_env({"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16"}) == (5, 1, 16)
    assert placement_from_env({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4"}) == (2, 2, 4)
    assert placement_from_env({}) == (0, 0, 1)
    # torchrun's variables win over Slurm's when both are present (torchrun inside an sbatch allocation).
    assert placement_from_env({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == (1, 1, 2)


@pytest.mark.parametrize(
    "key, name",
    [
        ("train/loss", "train_loss"),
        ("train_loss", "train_loss"),
        ("val acc@1", "val_acc_1"),
        ("1cycle/lr", "_1cycle_lr"),
        ("ns:metric", "ns:metric"),
        ("é", "_"),
        ("", "_"),
    ],
)
def test_metric_names(key, name):
    assert metric_name(key) == name
