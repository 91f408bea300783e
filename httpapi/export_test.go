package httpapi

// MergeFamiliesForTest exposes mergeFamilies to the external tests.
var MergeFamiliesForTest = mergeFamilies
