package trace

import "testing"

func TestTraceparent(t *testing.T) {
	tp := New()
	if !Valid(tp) {
		t.Fatalf("New() = %q is not valid", tp)
	}
	c := Child(tp)
	if ID(c) != ID(tp) || c == tp {
		t.Fatalf("Child(%q) = %q: want same trace id, new span", tp, c)
	}
	for _, bad := range []string{"", "00-0000", "00-00000000000000000000000000000000-0000000000000001-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true, want false", bad)
		}
	}
	if got := ID("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("ID = %q", got)
	}
}
