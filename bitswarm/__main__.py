from bitswarm.cli import main

raise SystemExit(main())
