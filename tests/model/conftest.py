import sys
from pathlib import Path

# lets test modules here import the official-structured reference model by name
sys.path.insert(0, str(Path(__file__).parent))
