"""Credentials: what an upload's ``Authorization`` and ``DPoP`` headers claim, and the checks the gate can
make of them offline. The PDS itself is the final judge (gate.pipeline asks it before any verdict)."""
