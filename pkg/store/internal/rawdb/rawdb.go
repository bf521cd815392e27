// Package rawdb hands a store's gorm handle to the store's own test support (storetest), and
// to no other package: Go allows only pkg/store/... to import it.
package rawdb

import "gorm.io/gorm"

// Of returns the handle of a *store.Store; package store sets it when it is loaded.
var Of func(store any) *gorm.DB
