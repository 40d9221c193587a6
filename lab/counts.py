"""The migration test's count, as the node's perl loop records it in the
shared work folder (initrd/node/): `progress` (the latest state) and
`history` (one row a step: state, count, host, pid), and the judge of that
history: one computation, counting on from where the source node stopped,
finished on the target (a restart from zero, a second process, a count
going backwards or never finishing on the target are refused)."""
from pathlib import Path


def read_progress(shared: Path) -> list | None:
    path = shared / "work" / "progress"
    try:
        state, count, host, pid = path.read_text().split()
        return [state, int(count), host, int(pid)]
    except (FileNotFoundError, ValueError):
        return None


def read_history(shared: Path, name: str = "history") -> list:
    path = shared / "work" / name
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else ():
        state, count, host, pid = line.split()
        rows.append([state, int(count), host, int(pid)])
    return rows


def judge_history(history: list, source: str, target: str, total: int) -> tuple[int | None, list[str]]:
    """(last count on the source, problems): one computation, counting on
    from where the source stopped, finished on the target."""
    problems = []
    if not history:
        return None, ["no progress was recorded"]
    if [row[0] for row in history].count("start") != 1 or history[0][0] != "start":
        problems.append("the computation started more than once (restarted, not continued)")
    if len({row[3] for row in history}) != 1:
        problems.append(f"more than one process counted: pids {sorted({row[3] for row in history})}")
    counts = [row[1] for row in history]
    steps = counts[:-1] if history[-1][0] == "done" else counts     # "done" repeats the last count
    if steps != sorted(steps) or len(set(steps)) != len(steps) or (steps and counts[-1] < steps[-1]):
        problems.append("the count went backwards or repeated: not one computation continuing")
    hosts = [row[2] for row in history]
    switch = next((i for i, host in enumerate(hosts) if host != source), None)
    if switch is None or hosts[switch:] != [target] * (len(hosts) - switch) or hosts[:switch] != [source] * switch:
        problems.append(f"the count did not run on {source} and then only on {target}: hosts {hosts}")
    last_source = counts[switch - 1] if switch else None
    if history[-1][:3] != ["done", total, target]:
        problems.append(f"the computation did not finish on {target} with {total}: last record {history[-1]}")
    if switch is not None and switch < len(counts) and last_source is not None and counts[switch] <= last_source:
        problems.append(f"{target} started at {counts[switch]}, not after {last_source}")
    return last_source, problems
