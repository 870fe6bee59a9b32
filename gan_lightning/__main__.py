from gan_lightning.cli import main

raise SystemExit(main())
