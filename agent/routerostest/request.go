package routerostest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// request is one client sentence taken apart.
type request struct {
	command string
	tag     string            // from .tag=; empty means untagged
	attrs   map[string]string // =name=value words; a later duplicate wins
	names   []string          // attribute names in arrival order, for error messages
	queries []string          // ?words, in order (order matters for queries)
	stray   []string          // words that are none of the above
}

// parseRequest splits a sentence into its command, attributes, queries and
// tag. Attribute words split at the first '=' after the leading one, so
// values may contain '='; a word without a second '=' (as some clients send
// for empty values) has an empty value.
func parseRequest(words []string) *request {
	req := &request{command: words[0], attrs: map[string]string{}}
	for _, w := range words[1:] {
		switch {
		case strings.HasPrefix(w, "="):
			name, value, _ := strings.Cut(w[1:], "=")
			if _, seen := req.attrs[name]; !seen {
				req.names = append(req.names, name)
			}
			req.attrs[name] = value
		case strings.HasPrefix(w, "?"):
			req.queries = append(req.queries, w[1:])
		case strings.HasPrefix(w, ".tag="):
			req.tag = w[len(".tag="):]
		case strings.HasPrefix(w, "."):
			// The manual names .tag as the only API attribute; others are
			// ignored rather than refused, as nothing says what RouterOS does.
		default:
			req.stray = append(req.stray, w)
		}
	}
	return req
}

// unknownAttr returns the first attribute not in allowed, in arrival order,
// or a stray word, so the trap names what the client actually sent first.
func (req *request) unknownAttr(allowed ...string) (string, bool) {
	for _, name := range req.names {
		if !slices.Contains(allowed, name) {
			return name, true
		}
	}
	if len(req.stray) > 0 {
		return req.stray[0], true
	}
	return "", false
}

// renamed returns a copy of req whose attribute old is called new; when
// req has both, new wins and old is dropped.
func (req *request) renamed(old, new string) *request {
	v, ok := req.attrs[old]
	if !ok {
		return req
	}
	out := *req
	out.attrs = maps.Clone(req.attrs)
	delete(out.attrs, old)
	out.names = slices.DeleteFunc(slices.Clone(req.names), func(n string) bool { return n == old })
	if _, both := req.attrs[new]; !both {
		out.attrs[new] = v
		out.names = append(out.names, new)
	}
	return &out
}

// logArgs renders the request's words for the log with secrets blanked.
func (req *request) logArgs() []string {
	var out []string
	for _, name := range req.names {
		v := req.attrs[name]
		if name == "password" || name == "response" {
			v = "<redacted>"
		}
		out = append(out, "="+name+"="+v)
	}
	for _, q := range req.queries {
		out = append(out, "?"+q)
	}
	return append(out, req.stray...)
}

// sentence is one reply: the reply word followed by =name=value words (or,
// for !fatal, one bare word). The tag is added when it is encoded.
type sentence []string

func done(attrs ...string) sentence { return append(sentence{"!done"}, attrs...) }

// trap builds !trap with an optional category (negative means none: login
// failures and many other traps carry no category).
func trap(category int, message string) sentence {
	s := sentence{"!trap"}
	if category >= 0 {
		s = append(s, "=category="+strconv.Itoa(category))
	}
	return append(s, "=message="+message)
}

// trapDone is the usual shape of a failed command: one trap, then !done.
func trapDone(category int, message string) []sentence {
	return []sentence{trap(category, message), done()}
}

// noSuchItem is what set/remove/place-before answer for unknown ids.
func noSuchItem() []sentence { return trapDone(-1, "no such item") }

func unknownParameter(name string) []sentence {
	return trapDone(-1, "unknown parameter "+name)
}

// encodeReply encodes sentences with tag placed right after the reply
// word, where real routers put it. !fatal ends the connection rather than
// answering a request, so it carries no tag.
func encodeReply(dst []byte, sentences []sentence, tag string) []byte {
	for _, s := range sentences {
		words := []string(s)
		if tag != "" && s[0] != "!fatal" {
			words = make([]string, 0, len(s)+1)
			words = append(words, s[0], ".tag="+tag)
			words = append(words, s[1:]...)
		}
		dst = AppendSentence(dst, words...)
	}
	return dst
}
