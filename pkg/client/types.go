package client

import "github.com/piseduce/piseduce/pkg/apijson"

// The API's objects, as openapi.json names them: pifrontend's own (pkg/apijson).
type (
	TokenRequest       = apijson.TokenRequest
	NewToken           = apijson.NewToken
	Node               = apijson.Node
	Environment        = apijson.Environment
	Reservation        = apijson.Reservation
	ReservationRequest = apijson.ReservationRequest
	DeploymentRequest  = apijson.DeploymentRequest
	Deployment         = apijson.Deployment
)
