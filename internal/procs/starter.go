package procs

import (
	"runtime"
	"sync"
)

// The kernel kills a child started with a parent-death signal when the
// thread that started it ends, not the process (Linux). Go ends a thread
// when a goroutine locked to it returns, as a test's network-namespace
// dialer does, and would then take down whatever that thread happened to
// start. So every child is started on one thread that lives as long as the
// process: a goroutine locked to it that never returns. A test binary or a
// benchmark that ends, is killed by a timeout or by hand, takes its
// children with it, and nothing else does.
var starter struct {
	once sync.Once
	run  chan func()
}

// onStarterThread runs start on the starter thread and returns its error.
func onStarterThread(start func() error) error {
	starter.once.Do(func() {
		starter.run = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the process
			for f := range starter.run {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	starter.run <- func() { errc <- start() }
	return <-errc
}
