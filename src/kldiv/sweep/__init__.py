"""Sweeps: a grid of training configurations x seeds, planned into tasks, run in this process or
on a Ray cluster, recorded in a SQLite results store that is also the resume journal.

  plan      the grid, its configurations, and the tasks still to run (`SweepPlan`, `tasks`)
  task      what one task computes, as plain arrays and dicts (`run_task`), on any backend
  store     the sweep directory and its results store (`create_sweep`, `Store`)
  backends  where tasks run: `local` (this process) or `ray`
  summary   statistics per configuration over the stored runs
  export    the stored runs and histories as typed tables, written as CSV or Parquet
  tracking  the summary as MLflow runs, one per configuration
"""

from kldiv.sweep.plan import Configuration, SweepPlan, Task, tasks

__all__ = ["Configuration", "SweepPlan", "Task", "tasks"]
