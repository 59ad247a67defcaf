package relay_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/listen"
	"github.com/tpf-dev/tpf/controller/edge/relay"
)

// The edge's data plane in a few lines: listeners that admit only
// 192.0.2.0/24 (everyone else's SYN is dropped), each admitted connection
// dialled to the target and relayed, all on the engine's event loops.
func Example() {
	eng, err := relay.New(relay.Config{DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	ctx, revoke := context.WithCancel(context.Background()) // cancel: cut every connection
	defer revoke()
	target := netip.MustParseAddrPort("10.99.0.2:22")
	lim := relay.Limits{IdleTimeout: 30 * time.Minute, BytesPerSecond: 1 << 20}

	set, err := listen.New(listen.Config{
		Bind:   netip.MustParseAddr("0.0.0.0"),
		Poller: eng, // run the listeners on the relay's loops
		Handler: func(c *listen.Conn) { // on the event loop: must not block
			from := c.RemoteAddr()
			eng.Connect(ctx, c, target, lim, func(st relay.Stats) {
				log.Printf("%v: %d up, %d down, %s", from, st.Up, st.Down, st.Reason)
			})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer set.Shutdown() // before eng.Close (deferred calls run last-in first-out)
	if err := set.Open(50022, netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		log.Print(err) // for example EADDRINUSE: report it, keep the others
	}
}
