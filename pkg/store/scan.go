package store

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// columnScanner reads a model's columns into its fields, as gorm's scan does, without
// gorm's allocations per column and row: a wide row read 200 times a tick (ClaimDue) cost
// more than all the rest of the tick. Its columns and fields are gorm's own schema of the
// model, so it cannot drift from it; it takes the plain kinds the models use (strings, ints,
// bools, times, nullable times) and refuses any other field (a serializer, say) when built.
type columnScanner struct {
	cols   []string // quoted table.column, in the model's order
	fields [][]int  // the field of each column, by index
	kinds  []reflect.Kind
}

var timeType = reflect.TypeFor[time.Time]()

// newColumnScanner derives the scanner of model, a pointer to a struct, from db's schema.
func newColumnScanner(db *gorm.DB, model any) (*columnScanner, error) {
	sch, err := schema.Parse(model, &sync.Map{}, db.NamingStrategy)
	if err != nil {
		return nil, err
	}
	c := &columnScanner{}
	for _, name := range sch.DBNames {
		f := sch.FieldsByDBName[name]
		if f.Serializer != nil || !f.Readable {
			return nil, fmt.Errorf("store: %s.%s is not a plain column", sch.Table, name)
		}
		k := f.FieldType.Kind()
		switch {
		case k == reflect.String, k == reflect.Bool, k >= reflect.Int && k <= reflect.Uint64:
		case f.FieldType == timeType:
		case k == reflect.Pointer && f.FieldType.Elem() == timeType:
		default:
			return nil, fmt.Errorf("store: %s.%s: a %s is not a kind the scanner takes", sch.Table, name, f.FieldType)
		}
		c.cols = append(c.cols, db.Statement.Quote(sch.Table+"."+name))
		c.fields = append(c.fields, f.StructField.Index)
		c.kinds = append(c.kinds, k)
	}
	return c, nil
}

// list is the select list of the columns.
func (c *columnScanner) list() string { return strings.Join(c.cols, ", ") }

// fieldDest is one column's destination: database/sql hands it the driver's value as is.
type fieldDest struct {
	v    reflect.Value
	kind reflect.Kind
}

// dests are the destinations of c's columns, to be pointed at a struct by point.
func (c *columnScanner) dests() []fieldDest {
	ds := make([]fieldDest, len(c.fields))
	for i, k := range c.kinds {
		ds[i].kind = k
	}
	return ds
}

// point aims ds at the fields of v, an addressable struct of c's model, and appends them to
// args, for rows.Scan.
func (c *columnScanner) point(ds []fieldDest, v reflect.Value, args []any) []any {
	for i, idx := range c.fields {
		ds[i].v = v.FieldByIndex(idx)
		args = append(args, &ds[i])
	}
	return args
}

// Scan takes what either driver gives: MariaDB []byte for text, int64 (uint64 unsigned) for
// integers and booleans, time.Time; SQLite string, int64, bool, time.Time or text for a time.
func (f *fieldDest) Scan(src any) error {
	v := f.v
	if src == nil {
		v.SetZero()
		return nil
	}
	switch f.kind {
	case reflect.String:
		switch x := src.(type) {
		case []byte:
			v.SetString(string(x))
			return nil
		case string:
			v.SetString(x)
			return nil
		}
	case reflect.Bool:
		switch x := src.(type) {
		case bool:
			v.SetBool(x)
			return nil
		case int64:
			v.SetBool(x != 0)
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := intValue(src)
		if err == nil && v.OverflowInt(n) {
			err = fmt.Errorf("%d overflows %s", n, v.Type())
		}
		if err != nil {
			return err
		}
		v.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if x, ok := src.(uint64); ok { // MariaDB's unsigned columns
			if v.OverflowUint(x) {
				return fmt.Errorf("%d overflows %s", x, v.Type())
			}
			v.SetUint(x)
			return nil
		}
		n, err := intValue(src)
		if err == nil && (n < 0 || v.OverflowUint(uint64(n))) {
			err = fmt.Errorf("%d overflows %s", n, v.Type())
		}
		if err != nil {
			return err
		}
		v.SetUint(uint64(n))
		return nil
	case reflect.Struct: // time.Time
		t, err := timeOf(src)
		if err != nil {
			return err
		}
		*v.Addr().Interface().(*time.Time) = t
		return nil
	case reflect.Pointer: // *time.Time
		t, err := timeOf(src)
		if err != nil {
			return err
		}
		*v.Addr().Interface().(**time.Time) = &t
		return nil
	}
	return fmt.Errorf("store: cannot read %T into a %s", src, v.Type())
}

// timeOf is the driver's time as it gave it (gorm keeps its location), or the text of one.
func timeOf(src any) (time.Time, error) {
	if t, ok := src.(time.Time); ok {
		return t, nil
	}
	var t timeValue
	err := t.Scan(src)
	return t.t, err
}

func intValue(src any) (int64, error) {
	switch x := src.(type) {
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows an int64", x)
		}
		return int64(x), nil
	case []byte:
		return strconv.ParseInt(string(x), 10, 64)
	case string:
		return strconv.ParseInt(x, 10, 64)
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("store: cannot read %T as an integer", src)
}

// claimScanners are the scanners of the rows ClaimDue reads, built once per Store.
type claimScanners struct {
	deployment, node *columnScanner
}

func (s *Store) claimScanners() (*claimScanners, error) {
	s.scanOnce.Do(func() {
		var c claimScanners
		if c.deployment, s.scanErr = newColumnScanner(s.db, &Deployment{}); s.scanErr != nil {
			return
		}
		if c.node, s.scanErr = newColumnScanner(s.db, &Node{}); s.scanErr != nil {
			return
		}
		s.scanners = &c
	})
	return s.scanners, s.scanErr
}
