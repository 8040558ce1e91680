"""HMA (OpenMediaMatch) configuration for deploy/compose: one instance with every role.

The database URI comes from OMM_DATABASE_URI (set in compose.yaml). HMA has no authentication, which
is why compose.yaml keeps it on an internal network.
"""

import os

from OpenMediaMatch.storage.postgres.impl import DefaultOMMStore
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.video import VideoContent
from threatexchange.exchanges.impl.fb_threatexchange_api import FBThreatExchangeSignalExchangeAPI
from threatexchange.exchanges.impl.ncmec_api import NCMECSignalExchangeAPI
from threatexchange.exchanges.impl.stop_ncii_api import StopNCIISignalExchangeAPI
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

DATABASE_URI = os.environ["OMM_DATABASE_URI"]
PRODUCTION = True
ROLE_HASHER = True
ROLE_MATCHER = True
ROLE_CURATOR = True
UI_ENABLED = False
TASK_FETCHER = True
TASK_INDEXER = True
TASK_INDEX_CACHE = True

STORAGE_IFACE_INSTANCE = DefaultOMMStore(
    signal_types=[PdqSignal, VideoMD5Signal],
    content_types=[PhotoContent, VideoContent],
    exchange_types=[
        FBThreatExchangeSignalExchangeAPI,  # type: ignore[list-item]
        NCMECSignalExchangeAPI,  # type: ignore[list-item]
        StopNCIISignalExchangeAPI,
    ],
)
