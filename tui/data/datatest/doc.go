// Package datatest provides a fixed-data data.Source for the console's
// golden and flow tests: lists come from a Fixture, actions are recorded, and
// the test pushes events, log lines and outages when it wants them.
package datatest
