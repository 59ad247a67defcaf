# Remove the tpf agent from a router that runs it as a container, and every rule it made.
{
:foreach c in=[/container/find where comment="tpf-agent"] do={
  :do { /container/stop $c } on-error={}
  :local gone false
  :for i from=1 to=60 do={
    :if (!$gone) do={
      :do { /container/remove $c; :set gone true } on-error={ :delay 1s }
    }
  }
}
:if ([:len [/container/find where comment="tpf-agent"]] > 0) do={ :error "tpf: the tpf-agent container did not stop: stop and remove it by hand, then run this again" }
/container/envs/remove [find where key~"^TPF_"]
/interface/bridge/port/remove [find where interface="veth-tpf-agent"]
/interface/veth/remove [find where name="veth-tpf-agent"]
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
