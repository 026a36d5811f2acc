#!/bin/bash
# A checkpointed Slurm job: survives its time limit, preemption and requeue.
#
# 120 s before the time limit Slurm sends SIGUSR1 to the batch shell — which is `ckimg run`
# itself (exec) — and ckimg run checkpoints the program into ckpt/, kills it and runs
# `scontrol requeue $SLURM_JOB_ID`. The requeued job starts this script again: ckimg run finds
# ckpt/ and restores the newest good checkpoint instead of starting afresh. Preemption or
# `scontrol requeue` (SIGTERM to every process of the job) is handled the same way: the
# program's own SIGTERM is held back until its checkpoint is written.
#
#SBATCH --job-name=my_sim
#SBATCH --time=02:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=my_sim.out

# Every 30 minutes as well, in case the node dies; keep two checkpoints to fall back on.
exec ckimg run --dir ckpt --every 30m --keep 2 --on USR1=checkpoint-requeue -- ./my_sim "$@"
