package fsm

import (
	"errors"
	"fmt"
)

// The command registry: one entry per operation, with everything the state
// machine knows of it: its name, the fields it may carry, how a command of
// it is checked and how it is applied (as Consul registers one apply
// function per request type). Validate, Apply and the encoding's field
// check all look an operation up here; a new operation is a new entry.
// The wire format is shared by all operations (command.go).

// fieldSet says which of a command's optional fields an operation uses.
type fieldSet uint8

const (
	// fieldsGroup: grouping labels, families, the unchecked flag.
	fieldsGroup fieldSet = 1 << iota
	// fieldsExpire: the cutoff and the expired groups.
	fieldsExpire
	// fieldsImport: the imported groups and their source.
	fieldsImport
	// fieldsSnapshot: the snapshot to restore.
	fieldsSnapshot
	// fieldsPushMeta: the group's own expiry and who pushed.
	fieldsPushMeta
	// fieldsSelectors: the selectors of a delete.
	fieldsSelectors
)

// operation is one kind of command.
type operation struct {
	name   string
	fields fieldSet
	// check reports why a command of this operation is not well-formed
	// (Validate wraps it in ErrInvalidCommand). readSnapshot false leaves
	// a restore's snapshot to apply, which reads it anyway.
	check func(cmd *Command, readSnapshot bool) error
	// apply changes the state; the command has passed check. It runs
	// under the FSM's write lock.
	apply func(s *FSM, cmd *Command) *Result
}

// operations is the registry. Entries never change after init.
var operations = map[Op]*operation{
	OpPut:            {name: "PUT", fields: fieldsGroup | fieldsPushMeta, check: checkPush, apply: (*FSM).applyPush},
	OpPost:           {name: "POST", fields: fieldsGroup | fieldsPushMeta, check: checkPush, apply: (*FSM).applyPush},
	OpDelete:         {name: "DELETE", fields: fieldsGroup, check: checkDelete, apply: (*FSM).applyDelete},
	OpWipe:           {name: "WIPE", fields: fieldsGroup, check: checkWipe, apply: (*FSM).applyWipe},
	OpExpire:         {name: "EXPIRE", fields: fieldsExpire, check: checkExpire, apply: (*FSM).applyExpire},
	OpImport:         {name: "IMPORT", fields: fieldsImport, check: checkImport, apply: (*FSM).applyImport},
	OpRestore:        {name: "RESTORE", fields: fieldsSnapshot, check: checkRestore, apply: (*FSM).applyRestore},
	OpDeleteMatching: {name: "DELETE_MATCHING", fields: fieldsSelectors, check: checkDeleteMatching, apply: (*FSM).applyDeleteMatching},
}

// String returns the name of the operation.
func (o Op) String() string {
	if op, ok := operations[o]; ok {
		return op.name
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// checkFields refuses fields that do not belong to the command's op, so a
// command means one thing only.
func (c *Command) checkFields() error {
	op, ok := operations[c.Op]
	if !ok {
		return fmt.Errorf("unknown op %d", c.Op)
	}
	if op.fields&fieldsGroup == 0 && (len(c.Labels) > 0 || len(c.Families) > 0 || c.Unchecked) {
		return fmt.Errorf("%s with grouping labels, families or unchecked flag", c.Op)
	}
	if op.fields&fieldsExpire == 0 && (len(c.Expire) > 0 || c.CutoffUnixNano != 0) {
		return fmt.Errorf("%s with expiry fields", c.Op)
	}
	if op.fields&fieldsImport == 0 && (len(c.Import) > 0 || c.Source != "") {
		return fmt.Errorf("%s with import fields", c.Op)
	}
	if op.fields&fieldsSnapshot == 0 && len(c.Snapshot) > 0 {
		return fmt.Errorf("%s with a snapshot", c.Op)
	}
	if op.fields&fieldsPushMeta == 0 && (c.ExpireAfter.Set || !c.PushedBy.IsZero()) {
		return fmt.Errorf("%s with an expiry or pushed-by", c.Op)
	}
	if op.fields&fieldsSelectors == 0 && len(c.Selectors) > 0 {
		return fmt.Errorf("%s with selectors", c.Op)
	}
	return nil
}

func checkPush(cmd *Command, _ bool) error {
	grouping := LabelsOf(cmd.Labels)
	if err := validateGroupingLabels(grouping); err != nil {
		return err
	}
	if err := validateExpiry(cmd.ExpireAfter); err != nil {
		return err
	}
	if err := validatePushedBy(cmd.PushedBy); err != nil {
		return err
	}
	for _, mf := range cmd.Families {
		if err := validateFamily(mf, grouping, cmd.Unchecked); err != nil {
			return err
		}
	}
	return nil
}

func checkDelete(cmd *Command, _ bool) error { return validateGroupingLabels(LabelsOf(cmd.Labels)) }

func checkWipe(cmd *Command, _ bool) error {
	if len(cmd.Labels) > 0 || len(cmd.Families) > 0 {
		return errors.New("WIPE with grouping labels or families")
	}
	return nil
}

func checkExpire(cmd *Command, _ bool) error {
	for _, labels := range cmd.Expire {
		if err := validateGroupingLabels(LabelsOf(labels)); err != nil {
			return fmt.Errorf("expired group: %v", err)
		}
	}
	return nil
}

func checkImport(cmd *Command, _ bool) error {
	seen := make(map[string]bool, len(cmd.Import))
	for _, g := range cmd.Import {
		if err := ValidateImport(g); err != nil {
			return fmt.Errorf("imported group: %v", err)
		}
		key := g.Labels.key()
		if seen[key] {
			return fmt.Errorf("imported group %v twice", g.Labels)
		}
		seen[key] = true
	}
	return nil
}

// checkRestore: every group of the snapshot must pass ValidateGroup.
func checkRestore(cmd *Command, readSnapshot bool) error {
	if !readSnapshot {
		return nil
	}
	_, err := ValidateSnapshot(cmd.Snapshot)
	return err
}

// applyDelete removes the group.
func (s *FSM) applyDelete(cmd *Command) *Result {
	s.setGroup(GroupingKey(cmd.Labels), nil)
	return &Result{}
}

// applyWipe removes every group.
func (s *FSM) applyWipe(*Command) *Result {
	for key := range s.groups {
		s.setGroup(key, nil)
	}
	return &Result{}
}
