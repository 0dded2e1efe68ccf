// SPDX-License-Identifier: Apache-2.0
// gopeer: a HashiCorp memberlist node driven over JSON lines, for system tests.

// Command gopeer runs one real HashiCorp memberlist node (the Debian 0.2.2
// library) and exposes it through the line protocol described in
// tests/system/README.md: flags configure the node, every event and every
// reply is one JSON object per line on stdout, and commands arrive one per
// line on stdin. memberlist's own log goes to stderr.
//
// Events are queued and written by a single goroutine, so a slow reader of
// stdout never blocks memberlist (its event callbacks run with the node table
// locked). The "t" of a line is taken when the event happens, not when the
// line is written.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// -- output -------------------------------------------------------------------

// obj is one JSON line; "ev" and "t" are added by emit.
type obj map[string]interface{}

// writer serialises lines to stdout in the order they were emitted.
type writer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	closed bool
	done   chan struct{}
}

func newWriter() *writer {
	w := &writer{done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.loop()
	return w
}

func (w *writer) loop() {
	defer close(w.done)
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.cond.Wait()
		}
		batch := w.queue
		w.queue = nil
		closed := w.closed
		w.mu.Unlock()
		for _, line := range batch {
			// os.Stdout is unbuffered: one write per line, nothing to flush.
			if _, err := os.Stdout.Write(line); err != nil {
				return
			}
		}
		if closed && len(batch) == 0 {
			return
		}
	}
}

// emit timestamps and queues one line. Safe from any goroutine, including
// memberlist callbacks that hold its node lock.
func (w *writer) emit(ev string, fields obj) {
	line := obj{"ev": ev, "t": time.Now().UnixNano()}
	for k, v := range fields {
		line[k] = v
	}
	buf, err := json.Marshal(line)
	if err != nil {
		buf, _ = json.Marshal(obj{"ev": "fatal", "t": time.Now().UnixNano(),
			"error": "cannot encode line: " + err.Error()})
	}
	buf = append(buf, '\n')
	w.mu.Lock()
	if !w.closed {
		w.queue = append(w.queue, buf)
		w.cond.Signal()
	}
	w.mu.Unlock()
}

// close writes everything queued so far and stops the writer.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.cond.Signal()
	w.mu.Unlock()
	<-w.done
}

// -- node states ---------------------------------------------------------------

// memberlist 0.2.2 keeps each node's state in the unexported nodeState, which
// embeds Node and declares its own State field. That field shadows
// Node.State, so the Node handed to delegates and returned by Members()
// always carries State == StateAlive: a delegate cannot tell a death from a
// graceful leave, and Members() hides dead, left and suspect nodes.
//
// nodeRecord mirrors nodeState's layout. Because Node is its first field, the
// *Node memberlist passes to NotifyLeave points at the whole nodeState, and
// the node table (Memberlist.nodes, guarded by Memberlist.nodeLock) can be
// read directly. checkLayout compares this mirror with the real type through
// reflection before it is ever used; on any mismatch (another memberlist
// version) the peer falls back to the public API and says so in its ready
// line ("states":"node_field").
type nodeRecord struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

var tableUsable bool

func checkLayout() error {
	mt := reflect.TypeOf((*memberlist.Memberlist)(nil)).Elem()
	lock, ok := mt.FieldByName("nodeLock")
	if !ok || lock.Type != reflect.TypeOf(sync.RWMutex{}) {
		return errors.New("Memberlist.nodeLock is not a sync.RWMutex")
	}
	nodes, ok := mt.FieldByName("nodes")
	if !ok || nodes.Type.Kind() != reflect.Slice ||
		nodes.Type.Elem().Kind() != reflect.Ptr ||
		nodes.Type.Elem().Elem().Kind() != reflect.Struct {
		return errors.New("Memberlist.nodes is not a []*struct")
	}
	real := nodes.Type.Elem().Elem()
	mirror := reflect.TypeOf(nodeRecord{})
	if real.Size() != mirror.Size() || real.NumField() != mirror.NumField() {
		return fmt.Errorf("%s has a different size or field count", real)
	}
	for i := 0; i < real.NumField(); i++ {
		r, m := real.Field(i), mirror.Field(i)
		if r.Name != m.Name || r.Type != m.Type || r.Offset != m.Offset {
			return fmt.Errorf("%s field %d is %s %s, expected %s %s",
				real, i, r.Name, r.Type, m.Name, m.Type)
		}
	}
	return nil
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// leaveState names the state of a node passed to NotifyLeave. memberlist
// calls NotifyLeave with its node lock held, right after setting the state.
func leaveState(n *memberlist.Node) string {
	if tableUsable {
		return stateName((*nodeRecord)(unsafe.Pointer(n)).State)
	}
	return stateName(n.State)
}

// memberInfo is one entry of the "members" reply.
type memberInfo struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Port        uint16 `json:"port"`
	State       string `json:"state"`
	Incarnation *int64 `json:"incarnation"`
	Meta        string `json:"meta"`
}

func members(m *memberlist.Memberlist) []memberInfo {
	result := []memberInfo{}
	if !tableUsable {
		for _, n := range m.Members() {
			result = append(result, memberInfo{Name: n.Name, Addr: n.Addr.String(),
				Port: n.Port, State: stateName(n.State), Meta: string(n.Meta)})
		}
		return result
	}
	v := reflect.ValueOf(m).Elem()
	lock := (*sync.RWMutex)(unsafe.Pointer(v.FieldByName("nodeLock").UnsafeAddr()))
	table := (*[]*nodeRecord)(unsafe.Pointer(v.FieldByName("nodes").UnsafeAddr()))
	lock.RLock()
	defer lock.RUnlock()
	for _, n := range *table {
		inc := int64(n.Incarnation)
		result = append(result, memberInfo{Name: n.Name, Addr: n.Addr.String(),
			Port: n.Port, State: stateName(n.State), Incarnation: &inc,
			Meta: string(n.Meta)})
	}
	return result
}

// -- delegates -----------------------------------------------------------------

// events reports memberlist's EventDelegate callbacks as lines.
type events struct{ out *writer }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.out.emit("join", obj{"node": n.Name, "addr": n.Addr.String(),
		"port": n.Port, "meta": string(n.Meta)})
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.out.emit("leave", obj{"node": n.Name, "addr": n.Addr.String(),
		"port": n.Port, "state": leaveState(n)})
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	e.out.emit("update", obj{"node": n.Name, "addr": n.Addr.String(),
		"port": n.Port, "meta": string(n.Meta)})
}

// metaDelegate serves the local node's meta; everything else is a no-op.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return d.meta[:limit]
	}
	return append([]byte(nil), d.meta...)
}

func (d *metaDelegate) set(meta string) {
	d.mu.Lock()
	d.meta = []byte(meta)
	d.mu.Unlock()
}

func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// -- configuration -------------------------------------------------------------

type options struct {
	name, bind, profile, key, meta, join string
	port                                 int
	probeIntervalMs, probeTimeoutMs      int
	gossipIntervalMs, pushPullMs         int
	suspicionMult                        int
	verbose                              bool
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.name, "name", "", "node name (required, unique in the cluster)")
	flag.StringVar(&o.bind, "bind", "127.0.0.1", "IP address to bind and advertise")
	flag.IntVar(&o.port, "port", 0, "UDP and TCP port; 0 picks a free one")
	flag.StringVar(&o.profile, "profile", "lan", "lan, wan or local (memberlist.Default*Config)")
	flag.StringVar(&o.key, "key", "", "hex AES key (16, 24 or 32 bytes); empty: no encryption")
	flag.StringVar(&o.meta, "meta", "", "initial node meta (at most 512 bytes)")
	flag.StringVar(&o.join, "join", "", "comma-separated host:port list to join at start")
	flag.IntVar(&o.probeIntervalMs, "probe-interval-ms", 0, "override ProbeInterval (0: profile)")
	flag.IntVar(&o.probeTimeoutMs, "probe-timeout-ms", 0, "override ProbeTimeout (0: profile)")
	flag.IntVar(&o.gossipIntervalMs, "gossip-interval-ms", 0, "override GossipInterval (0: profile)")
	flag.IntVar(&o.pushPullMs, "push-pull-interval-ms", 0, "override PushPullInterval (0: profile)")
	flag.IntVar(&o.suspicionMult, "suspicion-mult", 0, "override SuspicionMult (0: profile)")
	flag.BoolVar(&o.verbose, "verbose", true, "keep memberlist's [DEBUG] log lines")
	flag.Parse()
	return o
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// filterWriter drops memberlist's [DEBUG] lines unless verbose.
type filterWriter struct{ verbose bool }

func (f filterWriter) Write(p []byte) (int, error) {
	if !f.verbose && strings.Contains(string(p), "[DEBUG]") {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

func buildConfig(o options, d *metaDelegate, out *writer) (*memberlist.Config, error) {
	var c *memberlist.Config
	switch o.profile {
	case "lan":
		c = memberlist.DefaultLANConfig()
	case "wan":
		c = memberlist.DefaultWANConfig()
	case "local":
		c = memberlist.DefaultLocalConfig()
	default:
		return nil, fmt.Errorf("unknown profile %q (lan, wan or local)", o.profile)
	}
	if o.name == "" {
		return nil, errors.New("-name is required")
	}
	c.Name = o.name
	c.BindAddr = o.bind
	c.BindPort = o.port
	c.AdvertiseAddr = o.bind
	c.AdvertisePort = o.port
	if o.key != "" {
		key, err := hex.DecodeString(o.key)
		if err != nil {
			return nil, fmt.Errorf("-key is not hex: %v", err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("-key has %d bytes, want 16, 24 or 32", n)
		}
		c.SecretKey = key
	}
	if len(o.meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("-meta is longer than %d bytes", memberlist.MetaMaxSize)
	}
	if o.probeIntervalMs > 0 {
		c.ProbeInterval = ms(o.probeIntervalMs)
	}
	if o.probeTimeoutMs > 0 {
		c.ProbeTimeout = ms(o.probeTimeoutMs)
	}
	if o.gossipIntervalMs > 0 {
		c.GossipInterval = ms(o.gossipIntervalMs)
	}
	if o.pushPullMs > 0 {
		c.PushPullInterval = ms(o.pushPullMs)
	}
	if o.suspicionMult > 0 {
		c.SuspicionMult = o.suspicionMult
	}
	d.set(o.meta)
	c.Delegate = d
	c.Events = events{out: out}
	c.Logger = log.New(filterWriter{verbose: o.verbose}, o.name+" ",
		log.LstdFlags|log.Lmicroseconds)
	return c, nil
}

func splitList(s string) []string {
	var result []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			result = append(result, part)
		}
	}
	return result
}

// -- commands ------------------------------------------------------------------

// peer owns the node and answers commands. mu serialises commands, the
// signal handler and the end of input, so Leave never follows Shutdown.
type peer struct {
	mu       sync.Mutex
	m        *memberlist.Memberlist
	d        *metaDelegate
	out      *writer
	stopOnce sync.Once
}

// stop shuts the node down, writes the last line (if any) and exits.
func (p *peer) stop(code int, last func()) {
	p.stopOnce.Do(func() {
		if err := p.m.Shutdown(); err != nil {
			log.Printf("shutdown: %v", err)
		}
		if last != nil {
			last()
		}
		p.out.close()
		os.Exit(code)
	})
}

func (p *peer) reply(cmd string, fields obj) {
	fields["cmd"] = cmd
	p.out.emit("reply", fields)
}

func errorFields(err error) obj {
	return obj{"error": strings.TrimSpace(err.Error())}
}

func (p *peer) handle(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, arg := line, ""
	if i := strings.IndexByte(line, ' '); i >= 0 {
		cmd, arg = line[:i], strings.TrimSpace(line[i+1:])
	}
	switch cmd {
	case "members":
		p.reply(cmd, obj{"members": members(p.m)})
	case "join":
		addrs := splitList(arg)
		if len(addrs) == 0 {
			p.reply(cmd, obj{"error": "usage: join host:port[,host:port...]"})
			return
		}
		n, err := p.m.Join(addrs)
		fields := obj{"joined": n}
		if err != nil {
			fields["error"] = strings.TrimSpace(err.Error())
		}
		p.reply(cmd, fields)
	case "meta":
		if len(arg) > memberlist.MetaMaxSize {
			p.reply(cmd, obj{"error": fmt.Sprintf("meta is longer than %d bytes",
				memberlist.MetaMaxSize)})
			return
		}
		p.d.set(arg)
		if err := p.m.UpdateNode(5 * time.Second); err != nil {
			p.reply(cmd, errorFields(err))
			return
		}
		p.reply(cmd, obj{"ok": true})
	case "leave":
		timeout := 5000
		if arg != "" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				p.reply(cmd, obj{"error": "usage: leave [timeout_ms >= 0]"})
				return
			}
			timeout = n
		}
		if err := p.m.Leave(ms(timeout)); err != nil {
			p.reply(cmd, errorFields(err))
			return
		}
		p.reply(cmd, obj{"ok": true})
	case "health":
		p.reply(cmd, obj{"score": p.m.GetHealthScore()})
	case "shutdown":
		p.stop(0, func() { p.reply(cmd, obj{"ok": true}) })
	default:
		p.reply(cmd, obj{"error": "unknown command"})
	}
}

func main() {
	o := parseFlags()
	out := newWriter()
	fatal := func(err error) {
		out.emit("fatal", obj{"error": err.Error()})
		out.close()
		fmt.Fprintf(os.Stderr, "gopeer: %v\n", err)
		os.Exit(1)
	}
	if flag.NArg() != 0 {
		fatal(fmt.Errorf("unexpected arguments: %v", flag.Args()))
	}
	states := "node_table"
	if err := checkLayout(); err != nil {
		fmt.Fprintf(os.Stderr, "gopeer: node table not readable (%v); "+
			"falling back to Node.State\n", err)
		states = "node_field"
	} else {
		tableUsable = true
	}
	d := &metaDelegate{}
	conf, err := buildConfig(o, d, out)
	if err != nil {
		fatal(err)
	}
	m, err := memberlist.Create(conf)
	if err != nil {
		fatal(err)
	}
	p := &peer{m: m, d: d, out: out}

	self := m.LocalNode()
	ready := obj{"name": self.Name, "addr": self.Addr.String(),
		"port": self.Port, "profile": o.profile, "encrypted": o.key != "",
		"states": states, "pid": os.Getpid()}
	if addrs := splitList(o.join); len(addrs) > 0 {
		n, err := m.Join(addrs)
		ready["joined"] = n
		if err != nil {
			ready["join_error"] = strings.TrimSpace(err.Error())
		}
	}
	out.emit("ready", ready)

	// SIGTERM and SIGINT leave gracefully (up to 2 s), then shut down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		p.mu.Lock()
		if err := m.Leave(2 * time.Second); err != nil {
			log.Printf("leave on signal: %v", err)
		}
		p.stop(0, nil)
	}()

	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" {
			continue
		}
		p.handle(line)
	}
	// EOF (or a read error) on stdin: shut down without leaving.
	p.mu.Lock()
	p.stop(0, nil)
}
