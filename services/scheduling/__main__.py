from services.runtime.server import main
from services.scheduling.service import build

if __name__ == "__main__":
    main("scheduling", build)
