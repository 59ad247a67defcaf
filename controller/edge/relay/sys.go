package relay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop's system calls but one never block (non-blocking sockets
// and pipes, SPLICE_F_NONBLOCK, epoll_pwait with a zero timeout), so they
// are made raw: without entersyscall/exitsyscall, which would wake sysmon
// and hand the P off — measurable per connection on a small VM. The one
// that blocks, epoll_wait with a timeout (epollWait), is an ordinary system
// call, so that the runtime can run other goroutines on the loop's P.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// splice moves up to n bytes from one descriptor to another, without
// blocking; EINTR is retried.
func splice(from, to, n int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0, uintptr(n), spliceFlags)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// read reads from a non-blocking descriptor; EINTR is retried.
func read(fd int, b []byte) (int, error) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// write writes to a non-blocking descriptor; EINTR is retried.
func write(fd int, b []byte) (int, error) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// epollWait waits for events, at most msec milliseconds (-1: no limit).
// It may block, so it is a real system call: the Go scheduler can hand the
// loop's P to other goroutines meanwhile.
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	if msec == 0 {
		return epollPoll(epfd, events)
	}
	return unix.EpollWait(epfd, events, msec)
}

// epollPoll returns the ready events without waiting.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func shutdownWrite(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	return errnoErr(e)
}

// lingerZero makes close reset the connection instead of finishing it.
func lingerZero(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}

// eventfdAdd adds 1 to an eventfd counter, waking its epoll waiters.
func eventfdAdd(fd int) error {
	one := uint64(1)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one)), 8)
	if e == unix.EAGAIN {
		return nil // the counter is saturated: a wake-up is pending anyway
	}
	return errnoErr(e)
}

// eventfdClear resets an eventfd counter.
func eventfdClear(fd int) {
	var v uint64
	unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
}

// dupCloexec duplicates fd with close-on-exec.
func dupCloexec(fd uintptr) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_FCNTL, fd, unix.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Keep-alive of dialled targets: a dead target is noticed after about a
// minute (30 s idle, then 3 probes 10 s apart).
const (
	keepIdle     = 30
	keepInterval = 10
	keepCount    = 3
)

// dialStart creates a non-blocking TCP socket with TCP_NODELAY and starts
// connecting it to target; the loop learns the outcome from EPOLLOUT (and
// SO_ERROR after an error event). Keep-alive comes later (conn.keepAlive).
func dialStart(target netip.AddrPort) (int, error) {
	if !target.IsValid() || target.Port() == 0 {
		return -1, fmt.Errorf("invalid target address %v", target)
	}
	a := target.Addr().Unmap()
	var rsa unix.RawSockaddrAny
	var size uintptr
	family := unix.AF_INET
	pb := (*[2]byte)(unsafe.Pointer(&rsa.Addr.Data[0])) // port, network order
	binary.BigEndian.PutUint16(pb[:], target.Port())
	if a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		sa.Family = unix.AF_INET
		sa.Addr = a.As4()
		size = unix.SizeofSockaddrInet4
	} else {
		family = unix.AF_INET6
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		sa.Family = unix.AF_INET6
		sa.Addr = a.As16()
		size = unix.SizeofSockaddrInet6
	}
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if e != 0 {
		return -1, os.NewSyscallError("socket", e)
	}
	fd := int(r)
	if err := setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		closeFD(fd)
		return -1, err
	}
	_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), size)
	if e != 0 && e != unix.EINPROGRESS && e != unix.EINTR {
		closeFD(fd)
		return -1, os.NewSyscallError("connect", e)
	}
	return fd, nil
}

// setKeepAlive turns on a socket's keep-alive with the options above.
func setKeepAlive(fd int) error {
	for _, o := range [...][3]int{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepIdle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepInterval},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepCount},
	} {
		if err := setsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			return err
		}
	}
	return nil
}

func setsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), 4, 0)
	if e != 0 {
		return os.NewSyscallError("setsockopt", e)
	}
	return nil
}

// soError returns and clears a socket's pending error (the outcome of a
// non-blocking connect).
func soError(fd int) error {
	var v int32
	size := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return e
	}
	return errnoErr(unix.Errno(v))
}
