package store_test

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm/schema"

	"github.com/piseduce/piseduce/pkg/store"
)

// TestObservedColumns: after a snapshot a save writes nothing; a change of any one observed
// column's field, and of it alone, is written, with the field's value: the snapshot, the
// comparisons and the values written all follow the list of columns.
func TestObservedColumns(t *testing.T) {
	sch, err := schema.Parse(&store.Deployment{}, &sync.Map{}, schema.NamingStrategy{})
	check(t, err)
	var d store.Deployment
	fill(&d, 1, time.Now().UTC().Truncate(time.Second))
	store.Observe(&d)
	if ch := store.ObservedChanges(&d); len(ch) != 0 {
		t.Fatalf("just observed, a save writes %v", ch)
	}
	for _, name := range store.ObservedColumns() {
		f := sch.FieldsByDBName[name]
		if f == nil {
			t.Fatalf("%s is not a column of deployments", name)
		}
		for _, change := range []string{"other", "nil"} {
			c := d
			v := reflect.ValueOf(&c).Elem().FieldByIndex(f.StructField.Index)
			switch {
			case v.Type() == reflect.TypeFor[*time.Time]() && change == "nil":
				v.SetZero()
			case change == "nil":
				continue
			case v.Type() == reflect.TypeFor[*time.Time]():
				t := v.Interface().(*time.Time).Add(time.Second)
				v.Set(reflect.ValueOf(&t))
			case v.Type() == reflect.TypeFor[time.Time]():
				v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
			case v.Kind() == reflect.String:
				v.SetString(v.String() + "x")
			case v.Kind() == reflect.Bool:
				v.SetBool(!v.Bool())
			case v.CanInt():
				v.SetInt(v.Int() + 1)
			default:
				t.Fatalf("%s: a %s", name, v.Type())
			}
			want := v.Interface()
			if p, ok := want.(*time.Time); ok {
				want = nil
				if p != nil {
					want = *p
				}
			}
			ch := store.ObservedChanges(&c)
			if got, ok := ch[name]; len(ch) != 1 || !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("%s changed (%s): a save writes %v, want %s = %v alone", name, change, ch, name, want)
			}
		}
	}
}
