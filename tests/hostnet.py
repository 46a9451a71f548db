"""The host's network state that CNI plugins change (bridges, iptables/nft nat rules,
``net.ipv4.ip_forward``), recorded before a test and put back after it, so that no test
leaves anything behind on the machine.

portmap's DEL leaves the chains it shares between pods (``CNI-HOSTPORT-*``), as upstream;
:class:`HostNetworkGuard` removes them (and the nat tables iptables-nft made for them) unless
they were there before."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import TracebackType

MASQUERADE_COMMENT = "pyk8s: pods reach beyond the node"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


def nat_rules(tool: str = "iptables") -> list[str]:
    proc = subprocess.run([tool, "-w", "-t", "nat", "-S"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                         check=False).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def remove_shared_chains(tables_before: set[str], had_chains: dict[str, bool]) -> None:
    """Undo what portmap leaves for the next pod: its shared chains and their jumps, then
    the nat tables iptables-nft made for them, if empty and new."""
    for tool, family in (("iptables", "ip"), ("ip6tables", "ip6")):
        if had_chains[tool]:
            continue
        rules = nat_rules(tool)
        for chain in SHARED_CHAINS:
            if f"-N {chain}" in rules:
                subprocess.run([tool, "-w", "-t", "nat", "-F", chain], check=False)
        for rule in rules:
            if rule.startswith("-A ") and any(f"-j {c}" in rule for c in SHARED_CHAINS) \
                    and not rule.split()[1].startswith("CNI-"):
                subprocess.run([tool, "-w", "-t", "nat", "-D", *shlex.split(rule)[1:]],
                               check=False)
        for chain in SHARED_CHAINS:
            if f"-N {chain}" in rules:
                subprocess.run([tool, "-w", "-t", "nat", "-X", chain], check=False)
        table = f"table {family} nat"
        if table not in tables_before and all(not r.startswith(("-A", "-N"))
                                              for r in nat_rules(tool)):
            subprocess.run(["nft", "delete", "table", family, "nat"], capture_output=True,
                           check=False)


class HostNetworkGuard:
    """``with HostNetworkGuard(bridges=[...]):`` -- on exit the bridges go, ip_forward is
    restored, portmap's shared chains are removed, and any other CNI rule left is an
    error."""

    def __init__(self, bridges: list[str]) -> None:
        self.bridges = bridges

    def __enter__(self) -> HostNetworkGuard:
        self.forward = IP_FORWARD.read_text()
        self.tables = nft_tables()
        self.had = {tool: "-N CNI-HOSTPORT-DNAT" in nat_rules(tool)
                    for tool in ("iptables", "ip6tables")}
        self.rules_before = {tool: set(nat_rules(tool)) for tool in ("iptables", "ip6tables")}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        IP_FORWARD.write_text(self.forward)
        for rule in nat_rules("iptables"):  # the oci runtime's node-level masquerade
            if MASQUERADE_COMMENT in rule and rule not in self.rules_before["iptables"]:
                subprocess.run(["iptables", "-w", "-t", "nat", "-D", *shlex.split(rule)[1:]],
                               capture_output=True, check=False)
        remove_shared_chains(self.tables, self.had)
        if kind is not None:
            return
        assert nft_tables() <= self.tables, "nft tables left behind"
        for tool in ("iptables", "ip6tables"):
            left = [r for r in nat_rules(tool) if ("CNI-" in r or MASQUERADE_COMMENT in r)
                    and r not in self.rules_before[tool]]
            assert not left, f"{tool} rules left behind: {left}"
