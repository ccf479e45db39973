"""Workers as Slurm jobs: the sbatch script (`batch`), the Slurm commands (`commands`), the
autoscaler (`autoscale`), the worker's idle and time-limit exit (`lifetime`) and the
`srnet slurm` commands (`cli`). Torch-free; talks to Slurm through sbatch/squeue/scancel."""
