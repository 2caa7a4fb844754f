package migrate

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // windows name IANA zones; do not depend on the host's zoneinfo
)

// Window is a weekly maintenance window such as "Sat 02:00-04:00 Europe/Berlin".
// Days: a day (Sat), a list (Sat,Sun), a range (Mon-Fri), or daily; the
// zone defaults to UTC. A window whose end is before its start runs past
// midnight into the next day.
type Window struct {
	Days     [7]bool
	Start    time.Duration // since local midnight
	End      time.Duration
	Location *time.Location
	text     string
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

const windowHelp = `use "DAYS HH:MM-HH:MM [ZONE]", such as "Sat 02:00-04:00 Europe/Berlin", "Mon-Fri 22:00-23:30 UTC" or "daily 01:00-02:00"`

// ParseWindow parses a maintenance window.
func ParseWindow(s string) (Window, error) {
	w := Window{Location: time.UTC, text: strings.TrimSpace(s)}
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return w, fmt.Errorf("window %q: %s", s, windowHelp)
	}
	if err := w.parseDays(f[0]); err != nil {
		return w, fmt.Errorf("window %q: %v: %s", s, err, windowHelp)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return w, fmt.Errorf("window %q: %q is not a time range: %s", s, f[1], windowHelp)
	}
	var err error
	if w.Start, err = clock(from); err != nil {
		return w, fmt.Errorf("window %q: %v: %s", s, err, windowHelp)
	}
	if w.End, err = clock(to); err != nil {
		return w, fmt.Errorf("window %q: %v: %s", s, err, windowHelp)
	}
	if w.Start == w.End {
		return w, fmt.Errorf("window %q starts and ends at the same time: %s", s, windowHelp)
	}
	if len(f) == 3 {
		if w.Location, err = time.LoadLocation(f[2]); err != nil {
			return w, fmt.Errorf("window %q: unknown time zone %q: use an IANA name such as Europe/Berlin or UTC", s, f[2])
		}
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	s = strings.ToLower(s)
	if s == "daily" || s == "*" {
		for i := range w.Days {
			w.Days[i] = true
		}
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		da, ok := weekdays[prefix3(a)]
		if !ok {
			return fmt.Errorf("%q is not a day", a)
		}
		if !isRange {
			w.Days[da] = true
			continue
		}
		db, ok := weekdays[prefix3(b)]
		if !ok {
			return fmt.Errorf("%q is not a day", b)
		}
		for d := da; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == db {
				break
			}
		}
	}
	return nil
}

func prefix3(s string) string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * time.Hour, nil
		}
		return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func (w Window) String() string { return w.text }

// start of the window that opens on the local day of t.
func (w Window) openingOn(t time.Time) time.Time {
	y, mo, d := t.In(w.Location).Date()
	midnight := time.Date(y, mo, d, 0, 0, 0, 0, w.Location)
	return midnight.Add(w.Start)
}

func (w Window) length() time.Duration {
	if w.End > w.Start {
		return w.End - w.Start
	}
	return 24*time.Hour - w.Start + w.End
}

// current returns the opening of the window containing t, if any.
func (w Window) current(t time.Time) (time.Time, bool) {
	for back := 0; back <= 1; back++ {
		day := t.In(w.Location).AddDate(0, 0, -back)
		if !w.Days[day.Weekday()] {
			continue
		}
		open := w.openingOn(day)
		if !t.Before(open) && t.Before(open.Add(w.length())) {
			return open, true
		}
	}
	return time.Time{}, false
}

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	_, ok := w.current(t)
	return ok
}

// EndOf is the end of the window containing t (t itself when outside).
func (w Window) EndOf(t time.Time) time.Time {
	open, ok := w.current(t)
	if !ok {
		return t
	}
	return open.Add(w.length())
}

// NextStart is the next opening after t.
func (w Window) NextStart(t time.Time) time.Time {
	for ahead := 0; ahead <= 8; ahead++ {
		day := t.In(w.Location).AddDate(0, 0, ahead)
		if !w.Days[day.Weekday()] {
			continue
		}
		if open := w.openingOn(day); open.After(t) {
			return open
		}
	}
	return t
}
