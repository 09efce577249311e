"""python -m nanbyo.check PATH... : the XML check tool (nanbyo.xmlio.check), offline; see nanbyo.xmlio.cli."""
import sys

from nanbyo.xmlio.cli import main

if __name__ == "__main__":
    sys.exit(main())
