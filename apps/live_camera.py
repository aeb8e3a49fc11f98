#!/usr/bin/env python3
"""Live video classification with an lvt_edge bundle: the same as `lvt-edge live`.

    python apps/live_camera.py --bundle lvt-bundle --precision int8 --source 0
    python apps/live_camera.py --bundle lvt-bundle --source synth: --headless --jsonl -
    python apps/live_camera.py --bundle lvt-bundle --csi --save out.mp4          # Jetson CSI camera

`--help` lists every option.
"""

import sys

from lvt_edge.commands.live import main

if __name__ == "__main__":
    sys.exit(main())
