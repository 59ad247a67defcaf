# Remove the RouterOS side of an off-router tpf agent, and every rule it made.
# Stop the agent on its host first: systemctl disable --now tpf-agent@ROUTER
{
/user/remove [find where group="tpf-agent"]
/user/group/remove [find where name="tpf-agent"]
/ip/firewall/filter/remove [find where comment~"^tpf-agent"]
/ip/firewall/nat/remove [find where comment~"^tpf-agent"]
/ip/address/remove [find where comment="tpf-agent"]
/interface/bridge/port/remove [find where comment="tpf-agent"]
/interface/bridge/remove [find where name="tpf-agent"]
/ip/firewall/nat/remove [find where comment~"^tpf:"]
:put "tpf: removed"
}
