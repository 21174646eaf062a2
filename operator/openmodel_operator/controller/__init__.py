"""The reconciler: pure planning of an OpenModel's children and status, plus thin Kopf handlers."""
