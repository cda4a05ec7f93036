#!/usr/bin/env python3
"""Checks packaging/: the systemd units, the example config, the Dockerfile and the Kubernetes
manifests, against each other and against the steerd that was built.

Nothing here starts steerd or a unit: steerd runs only as `steerd --check-config FILE` (pure
parsing), the units are checked by `systemd-analyze verify` in a scratch root directory, and
the Dockerfile statically (it cannot be built without a registry).

    check_packaging.py --steerd build/bin/steerd --source-dir .   [unittest options]
"""

import argparse
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure, not a skip
    yaml = None

ARGS = None  # set in main()

# What steerd.service grants, each for a reason given in the unit's comments.
UNIT_CAPABILITIES = {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_CHOWN"}
# The runtime's base image has these (apt needs them): no need to install them.
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
STEERD_COMMAND = ["/usr/local/bin/steerd", "--config", "/etc/steer/steerd.toml"]


def path(*parts):
    return os.path.join(ARGS.source_dir, *parts)


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=60, **kwargs)


def check_config(text, directory, name="steerd.toml"):
    """Runs `steerd --check-config` on `text`, written as steerd wants a config: a regular
    file of this user (root when the tests run as root), mode 0644."""
    config = os.path.join(directory, name)
    with open(config, "w") as out:
        out.write(text)
    os.chmod(config, 0o644)
    return run([ARGS.steerd, "--check-config", config])


# --- systemd unit files -------------------------------------------------------------------

def read_unit(name):
    """A unit file as {section: {key: [values...]}} (keys may repeat), and its comment lines."""
    sections, comments, section = {}, [], None
    with open(path("packaging", "systemd", name)) as unit:
        lines = unit.read().splitlines()
    joined, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    for line in joined:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] in "#;":
            comments.append(stripped)
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            sections.setdefault(section, {})
            continue
        if section is None or "=" not in stripped:
            raise AssertionError(f"{name}: not a unit file line: {line!r}")
        key, value = (part.strip() for part in stripped.split("=", 1))
        sections[section].setdefault(key, []).append(value)
    return sections, comments


def one(unit, section, key):
    values = unit[0].get(section, {}).get(key)
    if not values:
        raise AssertionError(f"[{section}] has no {key}=")
    if len(values) != 1:
        raise AssertionError(f"[{section}] {key}= is set {len(values)} times: {values}")
    return values[0]


def words(unit, section, key):
    """A list setting (several lines add up; an empty assignment resets)."""
    result = []
    for value in unit[0].get(section, {}).get(key, []):
        result = [] if value == "" else result + value.split()
    return result


class SystemdUnits(unittest.TestCase):
    def setUp(self):
        self.steerd = read_unit("steerd.service")
        self.echo_socket = read_unit("example-echo.socket")
        self.echo = read_unit("example-echo.service")
        with open(path("packaging", "systemd", "steerd.toml.example"), "rb") as example:
            self.example = tomllib.load(example)

    def test_steerd_service_runs_steerd_as_notify_with_a_watchdog(self):
        service = lambda key: one(self.steerd, "Service", key)
        self.assertEqual(service("Type"), "notify")
        self.assertEqual(shlex.split(service("ExecStart")), STEERD_COMMAND)
        self.assertEqual(service("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(service("WatchdogSec"), "30s")
        self.assertEqual(service("Restart"), "on-failure")
        self.assertEqual(service("RuntimeDirectory"), "steer")
        self.assertEqual(service("RuntimeDirectoryPreserve"), "yes")
        self.assertNotIn("User", self.steerd[0]["Service"],
                         "steerd trusts only root's state and config: it runs as root")

    def test_steerd_capabilities_are_the_justified_ones(self):
        bounding = set(words(self.steerd, "Service", "CapabilityBoundingSet"))
        ambient = set(words(self.steerd, "Service", "AmbientCapabilities"))
        self.assertEqual(bounding, UNIT_CAPABILITIES)
        self.assertEqual(ambient, bounding)
        # Each one has its reason in the comments: a line "#  CAP_NAME  why...".
        for capability in sorted(bounding):
            self.assertTrue(any(re.match(rf"#\s+{capability}\s+\S", line)
                                for line in self.steerd[1]),
                            f"{capability} has no comment saying why steerd needs it")

    def test_steerd_service_is_hardened(self):
        service = lambda key: one(self.steerd, "Service", key)
        for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                           "ProtectKernelTunables": "yes", "ProtectHome": "yes",
                           "PrivateTmp": "yes", "ProtectKernelModules": "yes",
                           "ProtectControlGroups": "yes", "SystemCallArchitectures": "native",
                           "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
                           "RestrictRealtime": "yes", "UMask": "0077"}.items():
            self.assertEqual(service(key), value, key)
        self.assertEqual(set(words(self.steerd, "Service", "RestrictAddressFamilies")),
                         {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"})
        # setns(CLONE_NEWNET) into the state's namespace, nothing else.
        self.assertEqual(words(self.steerd, "Service", "RestrictNamespaces"), ["net"])
        writable = words(self.steerd, "Service", "ReadWritePaths")
        self.assertIn("/sys/fs/bpf", writable)
        self.assertIn("/run/steer", writable)
        for key in ("PrivateNetwork", "PrivateUsers", "ProtectProc", "DynamicUser"):
            self.assertNotIn(key, self.steerd[0]["Service"],
                             f"{key}= would cut steerd off the host's network namespace, its "
                             "state or its peers' /proc entries")

    def test_example_config_fits_the_unit(self):
        control = self.example.get("control", {}).get("socket", "/run/steer/steerd.sock")
        runtime = "/run/" + one(self.steerd, "Service", "RuntimeDirectory")
        self.assertEqual(os.path.dirname(control), runtime,
                         "the control socket belongs in the unit's RuntimeDirectory")
        bpffs = self.example.get("steerd", {}).get("bpffs", "/sys/fs/bpf")
        self.assertIn(bpffs, words(self.steerd, "Service", "ReadWritePaths"))
        if "group" in self.example.get("control", {}):
            self.assertIn("CAP_CHOWN", words(self.steerd, "Service", "CapabilityBoundingSet"),
                          "[control] group: steerd chowns its socket to a group root is not in")

    def test_echo_socket_and_service(self):
        self.assertEqual(one(self.echo_socket, "Socket", "ListenStream"), "127.0.0.1:7000")
        self.assertEqual(one(self.echo_socket, "Socket", "ReusePort"), "no")
        self.assertEqual(shlex.split(one(self.echo, "Service", "ExecStart")),
                         ["/usr/local/bin/steer-echo-server", "--label", "echo"])
        self.assertIn("steerd.service", words(self.echo, "Unit", "Requires"))
        self.assertIn("steerd.service", words(self.echo, "Unit", "After"))
        # The example config knows the label: who may register it, and what it steers to it.
        echo = self.example["service"]["echo"]
        self.assertTrue(echo.get("allow_uids"), "[service.echo] allows no uid")
        self.assertFalse(echo.get("reuseport", False),
                         "the socket is ReusePort=no: it is in no reuseport group")
        bindings = [b for b in self.example.get("binding", []) if b["label"] == "echo"]
        self.assertTrue(bindings, "the example config has no binding for 'echo'")
        listen = ipaddress.ip_address("127.0.0.1")
        self.assertTrue(any(listen in ipaddress.ip_network(b["prefix"]) for b in bindings))
        # The echo service's user must be able to connect to the control socket.
        group = self.example.get("control", {}).get("group")
        self.assertIsNotNone(group, "no [control] group: only root could connect")
        self.assertIn(group, words(self.echo, "Service", "SupplementaryGroups"))

    def test_example_config_passes_check_config(self):
        with open(path("packaging", "systemd", "steerd.toml.example")) as example:
            text = example.read()
        with tempfile.TemporaryDirectory() as directory:
            checked = check_config(text, directory)
            group = self.example.get("control", {}).get("group")
            if checked.returncode != 0 and group and run(["getent", "group", group]).returncode:
                # This host has no such group (the example asks the packager to create it):
                # that must be the only complaint, and with a group that exists it is valid.
                self.assertIn(f'group = "{group}": no such group', checked.stderr)
                self.assertEqual(checked.stderr.count("\n"), 1, checked.stderr)
                text = text.replace(f'group = "{group}"', 'group = "0"')
                checked = check_config(text, directory)
            self.assertEqual(checked.returncode, 0, checked.stderr)
            self.assertIn("valid", checked.stdout)
            self.assertIn("bindings: 1", checked.stdout)

    def test_systemd_analyze_verify(self):
        """`systemd-analyze verify` with --root: the unit files are copied unchanged into a
        scratch root directory holding the host's own units (for the targets they name), and
        stand-ins for the binaries their Exec lines name (verify checks only that those exist
        and are executable: /usr/local/bin/steerd, steer-echo-server, /bin/kill). Verify
        returns 0 even for unknown keys or bad values, which it prints: any output fails."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("no systemd-analyze (apt install systemd): the static checks stay")
        system_units = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                             if os.path.isfile(os.path.join(d, "multi-user.target"))), None)
        if system_units is None:
            self.skipTest("no systemd units on this host to verify against")
        units = ["steerd.service", "example-echo.socket", "example-echo.service"]
        with tempfile.TemporaryDirectory() as root:
            shutil.copytree(system_units, os.path.join(root, "usr/lib/systemd/system"),
                            symlinks=True)
            etc = os.path.join(root, "etc/systemd/system")
            os.makedirs(etc)
            for unit in units:
                shutil.copy(path("packaging", "systemd", unit), etc)
            for binary in ("usr/local/bin/steerd", "usr/local/bin/steer-echo-server",
                           "usr/bin/kill"):
                stand_in = os.path.join(root, binary)
                os.makedirs(os.path.dirname(stand_in), exist_ok=True)
                with open(stand_in, "w") as out:
                    out.write("#!/bin/sh\nexit 0\n")
                os.chmod(stand_in, 0o755)
            os.symlink("usr/bin", os.path.join(root, "bin"))  # merged /usr, as Debian 12

            def verify():
                return run([analyze, "verify", f"--root={root}", "--man=no", *units])

            verified = verify()
            output = (verified.stdout + verified.stderr).strip()
            self.assertEqual(verified.returncode, 0, output)
            self.assertEqual(output, "", "systemd-analyze verify had complaints")
            # The control: the same verify notices a broken unit (so silence above means
            # something), and a missing binary.
            with open(os.path.join(etc, "steerd.service"), "a") as unit:
                unit.write("[Service]\nWatchdogSecs=30s\n")
            self.assertIn("WatchdogSecs", (lambda r: r.stdout + r.stderr)(verify()))
            shutil.copy(path("packaging", "systemd", "steerd.service"), etc)
            os.remove(os.path.join(root, "usr/local/bin/steerd"))
            missing = verify()
            self.assertNotEqual(missing.returncode, 0)
            self.assertIn("/usr/local/bin/steerd", missing.stdout + missing.stderr)


# --- Kubernetes ---------------------------------------------------------------------------

def quantity(text):
    """A Kubernetes memory or CPU quantity in bytes or cores."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9,
             "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    if not match or (match.group(2) and match.group(2) not in units):
        raise AssertionError(f"not a quantity: {text!r}")
    return float(match.group(1)) * units.get(match.group(2), 1)


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(yaml, "python3-yaml is missing: run scripts/install-deps")
        with open(path("packaging", "kubernetes", "steerd-daemonset.yaml")) as manifest:
            self.documents = [d for d in yaml.safe_load_all(manifest) if d is not None]
        self.by_kind = {}
        for document in self.documents:
            self.by_kind.setdefault(document["kind"], []).append(document)
        self.daemonset = self.by_kind["DaemonSet"][0]
        self.configmap = self.by_kind["ConfigMap"][0]
        self.pod = self.daemonset["spec"]["template"]["spec"]
        self.container = next(c for c in self.pod["containers"] if c["name"] == "steerd")
        self.config_text = self.configmap["data"]["steerd.toml"]
        self.config = tomllib.loads(self.config_text)
        host, _, port = self.config["metrics"]["listen"].rpartition(":")
        self.metrics_host, self.metrics_port = host.strip("[]"), int(port)

    def test_kinds(self):
        self.assertEqual(sorted(d["kind"] for d in self.documents),
                         ["ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"])
        namespace = self.by_kind["Namespace"][0]["metadata"]["name"]
        for document in self.documents:
            self.assertIn("apiVersion", document)
            if document["kind"] != "Namespace":
                self.assertEqual(document["metadata"].get("namespace"), namespace,
                                 f"{document['kind']} is not in namespace {namespace}")
        self.assertEqual(self.daemonset["apiVersion"], "apps/v1")
        selector = self.daemonset["spec"]["selector"]["matchLabels"]
        labels = self.daemonset["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector.items() <= labels.items(), "the selector misses the pods")

    def test_pod_shares_the_hosts_network_not_its_pids(self):
        self.assertIs(self.pod.get("hostNetwork"), True)
        self.assertFalse(self.pod.get("hostPID", False))
        self.assertEqual(self.pod.get("serviceAccountName"),
                         self.by_kind["ServiceAccount"][0]["metadata"]["name"])

    def test_capabilities(self):
        security = self.container["securityContext"]
        self.assertIs(security.get("privileged"), False)
        self.assertEqual(security["capabilities"]["drop"], ["ALL"])
        added = set(security["capabilities"]["add"])
        # The unit's set, without CAP_ and without CHOWN unless the config names a group.
        # The unit's, and SYS_ADMIN for the runtimes' default seccomp profiles (bpf()).
        expected = {c.removeprefix("CAP_") for c in UNIT_CAPABILITIES} | {"SYS_ADMIN"}
        if "group" not in self.config.get("control", {}):
            expected.discard("CHOWN")
        self.assertEqual(added, expected)
        if "SYS_ADMIN" in added:
            self.assertIsNot(security.get("allowPrivilegeEscalation"), False,
                             "Kubernetes refuses allowPrivilegeEscalation: false with SYS_ADMIN")
        # Added capabilities are effective for root only (no ambient ones in Kubernetes).
        self.assertEqual(security.get("runAsUser"), 0)

    def test_configmap_is_mounted_where_steerd_reads_it(self):
        volume = next(v for v in self.pod["volumes"] if "configMap" in v)
        self.assertEqual(volume["configMap"]["name"], self.configmap["metadata"]["name"])
        # steerd refuses a config others may write: no group/other write bits, no fsGroup.
        mode = volume["configMap"].get("defaultMode", 0o644)
        self.assertEqual(mode & 0o022, 0, f"defaultMode {mode:o}")
        self.assertNotIn("fsGroup", self.pod.get("securityContext", {}))
        mount = next(m for m in self.container["volumeMounts"] if m["name"] == volume["name"])
        self.assertTrue(mount.get("readOnly"))
        items = {i["key"]: i["path"] for i in volume["configMap"].get("items", [])}
        config_path = os.path.join(mount["mountPath"], items.get("steerd.toml", "steerd.toml"))
        command = self.container.get("command", []) + self.container.get("args", [])
        self.assertEqual(command, STEERD_COMMAND)
        self.assertEqual(command[command.index("--config") + 1], config_path)

    def test_host_paths_match_the_config(self):
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        bpffs = self.config.get("steerd", {}).get("bpffs", "/sys/fs/bpf")
        control_dir = os.path.dirname(self.config["control"]["socket"])
        self.assertEqual(control_dir, "/run/steer")
        for where in (bpffs, control_dir):
            self.assertIn(where, mounts, f"nothing is mounted at {where}")
            volume = volumes[mounts[where]["name"]]
            self.assertEqual(volume.get("hostPath", {}).get("path"), where,
                             f"{where} must be the node's (hostPath)")
        # Bidirectional needs a privileged container; the pins are the node's files anyway.
        self.assertEqual(mounts[bpffs].get("mountPropagation"), "HostToContainer")
        self.assertEqual(volumes[mounts[bpffs]["name"]]["hostPath"].get("type"), "Directory")

    def test_probes_and_prometheus_on_the_metrics_port(self):
        # With hostNetwork the kubelet probes the node's address, and Prometheus scrapes it:
        # a loopback listen address would fail both.
        self.assertFalse(ipaddress.ip_address(self.metrics_host).is_loopback,
                         f"metrics listen on {self.metrics_host}")
        ports = {p["name"]: p["containerPort"] for p in self.container.get("ports", [])}
        self.assertIn(self.metrics_port, ports.values())
        for probe in ("livenessProbe", "readinessProbe"):
            http = self.container[probe]["httpGet"]
            self.assertEqual(http["path"], "/healthz", probe)
            self.assertEqual(ports.get(http["port"], http["port"]), self.metrics_port, probe)
        annotations = self.daemonset["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations.get("prometheus.io/scrape"), "true")
        self.assertEqual(annotations.get("prometheus.io/port"), str(self.metrics_port))
        self.assertEqual(annotations.get("prometheus.io/path"), "/metrics")

    def test_resources(self):
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                self.assertIn(resource, resources.get(kind, {}), f"{kind}.{resource}")
                quantity(resources[kind][resource])
        # The dispatcher's maps (~100 MiB) are charged to the pod's memory cgroup.
        self.assertGreaterEqual(quantity(resources["limits"]["memory"]), 192 * 2**20)
        self.assertLessEqual(quantity(resources["requests"]["memory"]),
                             quantity(resources["limits"]["memory"]))

    def test_configmap_passes_check_config(self):
        with tempfile.TemporaryDirectory() as directory:
            checked = check_config(self.config_text, directory)
            self.assertEqual(checked.returncode, 0, checked.stderr)
            self.assertIn("control socket: /run/steer/steerd.sock", checked.stdout)
            self.assertIn(f"metrics: {self.config['metrics']['listen']}", checked.stdout)
            # The control: steerd does refuse a broken one (so exit 0 above means something).
            broken = check_config(self.config_text.replace(
                self.config["metrics"]["listen"], "localhost:9641"), directory)
            self.assertEqual(broken.returncode, 1, broken.stdout)
            self.assertIn("listen", broken.stderr)


# --- Dockerfile ---------------------------------------------------------------------------

def dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    with open(path("packaging", "container", "Dockerfile")) as dockerfile:
        text = dockerfile.read()
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def apt_installed_packages(command):
    """The package names of every `apt-get install` in a shell command."""
    packages = []
    for part in re.split(r"&&|;|\|\|", command):
        tokens = shlex.split(part)
        if len(tokens) >= 2 and tokens[0] in ("apt-get", "apt") and "install" in tokens:
            after = tokens[tokens.index("install") + 1:]
            packages += [t for t in after if not t.startswith("-")]
    return packages


def packages_of(libraries):
    """{library path: Debian package or None} for library paths as ldd gives them, from one
    `dpkg -S`. With merged /usr a package may have registered /lib/... or /usr/lib/..., and
    either name may be a symlink: every spelling is asked for."""
    def spellings(library):
        names = []
        for name in (library, os.path.realpath(library)):
            names += [name, name.removeprefix("/usr") if name.startswith("/usr/") else "/usr" + name]
        return names
    asked = {library: spellings(library) for library in libraries}
    found = run(["dpkg", "-S", *sorted({n for names in asked.values() for n in names})])
    owner = {}
    for line in found.stdout.splitlines():
        packages, _, where = line.partition(": ")
        if where and not line.startswith("diversion"):
            owner[where.strip()] = packages.split(",")[0].split(":")[0].strip()
    return {library: next((owner[n] for n in names if n in owner), None)
            for library, names in asked.items()}


def apt_candidates(packages):
    """{package: candidate version or None}, from one `apt-cache policy` call."""
    policy = run(["apt-cache", "policy", *packages])
    candidates, current = {name: None for name in packages}, None
    for line in policy.stdout.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current in candidates and line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            candidates[current] = None if version == "(none)" else version
    return candidates


class Dockerfile(unittest.TestCase):
    def setUp(self):
        self.instructions = dockerfile_instructions()
        self.stages = []
        for keyword, rest in self.instructions:
            if keyword == "FROM":
                self.stages.append({"from": rest, "steps": []})
            else:
                self.assertTrue(self.stages, f"{keyword} before the first FROM")
                self.stages[-1]["steps"].append((keyword, rest))
        self.runtime = self.stages[-1]

    def runs(self, stage):
        return " && ".join(rest for keyword, rest in stage["steps"] if keyword == "RUN")

    def test_stages(self):
        self.assertGreaterEqual(len(self.stages), 2, "a build stage and a runtime stage")
        for stage in self.stages:
            image = stage["from"].split()[0]
            self.assertEqual(image, "debian:bookworm-slim")
        self.assertEqual(self.stages[0]["from"].split()[1:], ["AS", "build"])
        build = self.runs(self.stages[0])
        for step in ("scripts/install-deps", "cmake -S", "cmake --build", "cmake --install"):
            self.assertIn(step, build)
        copies = [rest for keyword, rest in self.runtime["steps"] if keyword == "COPY"]
        self.assertTrue(any(c.startswith("--from=build") and "/usr/local/bin/steerd" in c
                            for c in copies), "the runtime stage takes steerd from the build")
        self.assertNotIn("install-deps", self.runs(self.runtime),
                         "the runtime stage installs runtime libraries only")

    def test_entrypoint(self):
        entrypoints = [rest for keyword, rest in self.runtime["steps"] if keyword == "ENTRYPOINT"]
        self.assertEqual(len(entrypoints), 1)
        self.assertEqual(json.loads(entrypoints[0]), STEERD_COMMAND)

    def test_every_package_exists(self):
        packages = apt_installed_packages(self.runs(self.runtime))
        self.assertTrue(packages, "the runtime stage installs no package")
        for package, candidate in apt_candidates(packages).items():
            self.assertIsNotNone(candidate, f"{package}: apt-cache policy knows no such package "
                                            "(Debian 12 has no package of that name)")

    def test_runtime_packages_cover_what_steerd_links(self):
        installed = set(apt_installed_packages(self.runs(self.runtime))) | BASE_IMAGE_PACKAGES
        binaries = [ARGS.steerd]
        steer = os.path.join(os.path.dirname(ARGS.steerd), "steer")
        if os.path.exists(steer):
            binaries.append(steer)
        for binary in binaries:
            elf = run(["readelf", "-d", binary])
            self.assertEqual(elf.returncode, 0, elf.stderr)
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", elf.stdout)
            self.assertTrue(needed)
            resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", binary]).stdout,
                                       re.MULTILINE))
            for library in needed:
                self.assertIn(library, resolved, f"ldd does not find {library}")
            owners = packages_of([resolved[library] for library in needed])
            for library in needed:
                package = owners[resolved[library]]
                self.assertIsNotNone(package, f"no Debian package holds {resolved[library]}")
                self.assertIn(package, installed,
                              f"{os.path.basename(binary)} needs {library} from {package}, "
                              "which the runtime stage does not install")


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steerd", required=True, help="the steerd binary that was built")
    parser.add_argument("--source-dir", required=True, help="the repository's root")
    ARGS, rest = parser.parse_known_args()
    ARGS.steerd = os.path.abspath(ARGS.steerd)
    ARGS.source_dir = os.path.abspath(ARGS.source_dir)
    if not os.access(ARGS.steerd, os.X_OK):
        parser.error(f"{ARGS.steerd} is not an executable: build the steerd target")
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
