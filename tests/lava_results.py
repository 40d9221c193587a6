"""What a LAVA server returns for a finished job (its results YAML, the
shape lava_results_app exports: one entry per test case with name, job,
suite, result, metadata), for a job this project generated.  Used where no
lab node can run the job here: the real-hardware (x86) jobs."""
from pathlib import Path

import yaml

from lab.lava import MONITOR


def server_results(job: dict, *, job_id: int, kernel_sha256: str | None = None,
                   failure: str | None = None) -> str:
    """Results of `job` as a server reports them: both downloads, the boot,
    the monitor and the job.  `kernel_sha256`: what the download really had
    (the job's own by default); `failure`: console text the monitor
    matched, recorded as a failed case."""
    kernel = next(a["deploy"] for a in job["actions"] if "deploy" in a)
    kernel_sha = kernel_sha256 or kernel["kernel"]["sha256sum"]
    ramdisk_sha = kernel["ramdisk"]["sha256sum"]
    base = {"job": str(job_id), "measurement": "None", "unit": "", "logged": "2026-12-02 10:00:00+00:00"}

    def case(number, suite, name, result, level, **extra):
        return {**base, "id": str(1000 + number), "suite": suite, "name": name, "result": result,
                "level": level, "url": f"/results/testcase/{1000 + number}",
                "metadata": {"definition": suite, "case": name, "result": result, "level": level,
                             "namespace": "common", **({"extra": extra} if extra else {})}}

    entries = [
        case(1, "lava", "http-download", "pass", "1.1.1", label="kernel", sha256sum=kernel_sha,
             md5sum="0" * 32, size="1335808"),
        case(2, "lava", "http-download", "pass", "1.2.1", label="ramdisk", sha256sum=ramdisk_sha),
        case(3, "lava", "bootloader-commands", "pass", "2.2"),
        case(4, "lava", "lava-test-monitor", "fail" if failure else "pass", "3.1",
             status="failed" if failure else "passed"),
    ]
    if failure:
        case_id = "".join(c if c.isalnum() else "_" for c in failure.lower())
        entries.append(case(5, f"0_{MONITOR}", case_id, "fail", "3.1", test_case_id=failure))
    entries.append(case(6, "lava", "job", "fail" if failure else "pass", ""))
    return yaml.safe_dump(entries, sort_keys=False)


def write_server_results(path: Path, job_path: Path, **kwargs) -> Path:
    job = yaml.safe_load(Path(job_path).read_text())
    path.write_text(server_results(job, **kwargs))
    return path
