"""Hold music: uploads (SPEC sections 5 and 6) and the MOH classes that play them.

- validate.py: MP3, mono, at most 2 MB (pure).
- files.py:    conversion to 8 kHz mono WAV, atomic replacement, configured `{file: ...}`.
- moh.py:      class names, numcfg-moh.conf, the ARI reload.
- upload.py:   one upload end to end, for the API and the CLI.
"""

from .files import (
    HoldMusicError,
    Prepared,
    Staged,
    asterisk_folder,
    convert_to_wav,
    install_music,
    music_path,
    number_folder,
    prepare_configured_files,
    stage_music,
)
from .moh import (
    MOH_CONF_NAME,
    moh_class_for,
    moh_conf_path,
    reload_moh,
    render_moh_conf,
    upload_class,
    write_moh_conf,
)
from .upload import UploadResult, unknown_number, upload_hold_music
from .validate import MAX_BYTES, HoldMusicRejected, Mp3Info, too_large, validate_mp3

__all__ = [
    "MAX_BYTES",
    "MOH_CONF_NAME",
    "HoldMusicError",
    "HoldMusicRejected",
    "Mp3Info",
    "Prepared",
    "Staged",
    "UploadResult",
    "asterisk_folder",
    "convert_to_wav",
    "install_music",
    "moh_class_for",
    "moh_conf_path",
    "music_path",
    "number_folder",
    "prepare_configured_files",
    "reload_moh",
    "render_moh_conf",
    "stage_music",
    "too_large",
    "unknown_number",
    "upload_class",
    "upload_hold_music",
    "validate_mp3",
    "write_moh_conf",
]
