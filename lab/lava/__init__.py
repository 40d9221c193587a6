"""LAVA, for boots beyond this machine: config.py (configs/lava.toml, where
files go), jobs.py (job definitions, checked with LAVA's own schema),
run.py (one QEMU job through Debian's lava-run), results.py (a job's
results read safely and imported into the variant's boot record).  Imports
common, kernels, initrd and lab.boot.  The names below are its face."""
from lab.lava.config import MONITOR, ORIGIN_KEY, artifacts_dir, jobs_dir, lab_dir, lava_dir, settings, settings_file
from lab.lava.jobs import job_file_name, jobs_for, monitor, validate_jobs, write_jobs
from lab.lava.results import (_download_sha256, console_lines, import_results, judge, lab_results, read_job,
                              read_results)
from lab.lava.run import device_dictionary, run_local

__all__ = ["MONITOR", "ORIGIN_KEY", "artifacts_dir", "jobs_dir", "lab_dir", "lava_dir", "settings", "settings_file",
           "job_file_name", "jobs_for", "monitor", "validate_jobs", "write_jobs", "_download_sha256",
           "console_lines", "import_results", "judge", "lab_results", "read_job", "read_results",
           "device_dictionary", "run_local"]
