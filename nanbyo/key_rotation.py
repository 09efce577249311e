"""Key rotation (`flask --app app nanbyo rotate-key`): new data and index keys, everything encrypted under the old
ones rewritten under the new, then the old keys dropped.

Each kind of encrypted thing is rewritten by the code that owns it: documents and corrections (re-indexed too), held
forms, scans, XML import jobs' files and reports, user-file previews. The new keys are saved (and active: other
processes read the key file again when it changes) before anything is rewritten, and the old ones dropped only after
everything was: an interrupted rotation keeps every row and file readable, and is simply run again.
"""
from nanbyo import documents, held_forms, userfile
from nanbyo.crypto import keyring
from nanbyo.files import scans
from nanbyo.xmlio import import_jobs


def rotate(batch_size=500, progress=None) -> dict:
    """Rotate the keys; what was rewritten, by kind."""
    ring = keyring()
    ring.begin_rotation()
    counts = documents.reencrypt(ring, batch_size=batch_size, progress=progress)
    counts["held_forms"] = held_forms.reencrypt(ring)
    counts["scans"] = scans.reencrypt(ring)
    counts |= import_jobs.reencrypt(ring)
    counts["previews"] = userfile.reencrypt_previews(ring)
    ring.finish_rotation()
    return counts
